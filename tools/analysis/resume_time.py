"""Time to resume an iteration-based run at iteration N, data loading included.

    python tools/analysis/resume_time.py CONFIG [--iteration 2000] [--cfg-options k=v ...]

mmengine's ``IterBasedTrainLoop`` pulls the N batches already trained on through the train
dataloader before the first new one; ``ExactResumeIterBasedTrainLoop`` starts its sampler at
the next sample. Both are timed here up to and including the first new batch, on one
process (each process of a distributed run does the same), with the config's dataloader.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mmengine.config import DictAction


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='training config')
    parser.add_argument('--iteration', type=int, default=2000, help='iteration to resume at')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='config overrides')
    return parser.parse_args(argv)


def _image_names(batch) -> list[str]:
    return [Path(sample.img_path).name for sample in batch['data_samples']]


def resume_with_mmengine(cfg, iteration: int) -> tuple[float, list[str]]:
    """Seconds to the first new batch as ``IterBasedTrainLoop.run`` gets there."""
    from mmengine.runner import Runner
    from mmengine.runner.loops import _InfiniteDataloaderIterator

    loader = Runner.build_dataloader(cfg.train_dataloader, seed=cfg.randomness.seed)
    start = time.perf_counter()
    iterator = _InfiniteDataloaderIterator(loader)
    for _ in range(iteration):
        next(iterator)
    batch = next(iterator)
    return time.perf_counter() - start, _image_names(batch)


def resume_exactly(cfg, iteration: int) -> tuple[float, list[str]]:
    """Seconds to the first new batch as ``ExactResumeIterBasedTrainLoop.run`` gets there."""
    from mmengine.runner import Runner

    from mae_seg.engine.resume import resumable_dataloader_cfg

    loader_cfg = resumable_dataloader_cfg(cfg.train_dataloader)
    loader = Runner.build_dataloader(loader_cfg, seed=cfg.randomness.seed)
    start = time.perf_counter()
    loader.sampler.start_at(iteration * loader.batch_size)
    batch = next(iter(loader))
    return time.perf_counter() - start, _image_names(batch)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mae_seg.compat import setup_openmmlab

    setup_openmmlab()  # before mmengine reads a config or a checkpoint
    import mae_seg  # noqa: F401 - registers the loop's sampler and data set wrapper
    from mae_seg.errors import ConfigError
    from mae_seg.runner import load_config

    try:
        cfg = load_config(args.config, args.cfg_options)
    except ConfigError as error:
        print(f'resume_time.py: error: {error}', file=sys.stderr)
        return 2
    from mmengine.registry import init_default_scope

    init_default_scope(cfg.get('default_scope', 'mmseg'))
    loader = cfg.train_dataloader
    samples = args.iteration * loader.batch_size
    print(
        f'resume at iteration {args.iteration}: {Path(args.config).name}, batch '
        f'{loader.batch_size}, {loader.num_workers} workers, one process'
    )
    exact_s, exact_names = resume_exactly(cfg, args.iteration)
    mmengine_s, mmengine_names = resume_with_mmengine(cfg, args.iteration)
    print(
        f'mmengine IterBasedTrainLoop      {mmengine_s:9.3f} s  '
        f'({args.iteration} batches, {samples} samples, loaded and discarded)'
    )
    print(
        f'ExactResumeIterBasedTrainLoop    {exact_s:9.3f} s  (sampler started at sample {samples})'
    )
    print(f'speed-up {mmengine_s / exact_s:.0f}x; first batch after resume: {exact_names}')
    same = 'yes' if exact_names == mmengine_names else f'no: mmengine {mmengine_names}'
    print(f'same images as mmengine: {same}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
