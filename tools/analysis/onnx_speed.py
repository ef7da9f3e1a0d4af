"""onnxruntime against PyTorch on the CPU, side by side: the same segmentor (random weights),
whole image and sliding windows, timed in alternation.

``python tools/analysis/onnx_speed.py [--configs CONFIG ...] [--threads 2] [--rounds 3]``

Each config's segmentor is exported with ``--dynamic`` to a temporary file, then timed at
``--whole`` (one pass) and ``--slide`` (the config's crop size and stride, windows batched
as ``BatchedSlideEncoderDecoder`` batches them) in PyTorch and in onnxruntime at each
``--ort-levels`` graph optimisation level, all with ``--threads`` intra-op threads.
Prints a Markdown table (docs/deployment.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Callable

from benchmarking.measure import summarize, time_interleaved

QUICK_START = 'configs/quick_start/mae-tiny_upernet_2xb4-400_shapes-128x128.py'
VIT_B = 'configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py'


def size(text: str) -> tuple[int, int]:
    """``512x683`` -> ``(512, 683)``."""
    parts = text.lower().split('x')
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f'{text!r} is not a size such as 512x683')
    return int(parts[0]), int(parts[1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='onnx_speed.py', description=__doc__.splitlines()[0])
    parser.add_argument('--configs', nargs='+', default=[QUICK_START, VIT_B])
    parser.add_argument('--whole', type=size, default=(512, 512), help='whole-image size HxW')
    parser.add_argument('--slide', type=size, default=(512, 683), help='slide image size HxW')
    parser.add_argument(
        '--whole-batches', type=int, nargs='+', default=[1], help='images a whole-image pass'
    )
    parser.add_argument('--threads', type=int, default=2, help='intra-op threads of both')
    parser.add_argument('--rounds', type=int, default=3, help='timed calls of each (median)')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument(
        '--ort-levels',
        nargs='+',
        default=['all', 'basic'],
        choices=['disable', 'basic', 'extended', 'all'],
        help='onnxruntime graph optimisation levels to time',
    )
    return parser.parse_args(argv)


def build(config: str):
    """The config's segmentor with random weights (no pretrained file), wrapped for export."""
    from mmseg.apis import init_model

    from mae_seg.deploy import SegmentorForExport
    from mae_seg.runner import load_config

    cfg = load_config(config)
    cfg.model.pretrained = None
    cfg.model.backbone.init_cfg = None
    segmentor = init_model(cfg, None, device='cpu')
    segmentor.init_weights()
    return segmentor, SegmentorForExport(segmentor).eval()


def measure(config: str, args: argparse.Namespace, workdir: str) -> list[dict]:
    """Rows of the table for one config."""
    import torch

    from mae_seg.deploy import OnnxSegmentor, export_onnx
    from mae_seg.models.segmentors import sliding_windows

    segmentor, model = build(config)
    path = os.path.join(workdir, os.path.basename(config) + '.onnx')
    export_onnx(model, path, segmentor.data_preprocessor.size or (512, 512), dynamic=True)
    sessions = {
        level: OnnxSegmentor(path, threads=args.threads, optimization=level)
        for level in args.ort_levels
    }
    crop, stride = segmentor.test_cfg.crop_size, segmentor.test_cfg.stride
    batch = int(segmentor.test_cfg.get('window_batch_size', 8))
    generator = torch.Generator().manual_seed(0)
    rows = []
    cases = [('whole', args.whole, batch) for batch in args.whole_batches]
    for mode, shape, images_per_pass in [*cases, ('slide', args.slide, 1)]:
        images = torch.rand(images_per_pass, 3, *shape, generator=generator) * 255
        steps = {'pytorch': _pytorch_step(segmentor, model, images, mode)}
        for level, session in sessions.items():
            steps[f'ort-{level}'] = _ort_step(session, images.numpy(), mode, crop, stride, batch)
        times, _ = time_interleaved(steps, args.warmup, args.rounds)
        case = f'{mode} {shape[0]}x{shape[1]}'
        if images_per_pass > 1:
            case += f', {images_per_pass} images'
        if mode == 'slide':
            count = len(sliding_windows(tuple(shape), tuple(crop), tuple(stride)))
            case += f', {count} windows of {crop[0]}x{crop[1]}'
        rows.append(
            dict(
                model=os.path.basename(config),
                case=case,
                medians={name: summarize(values)['median'] for name, values in times.items()},
                minima={name: summarize(values)['min'] for name, values in times.items()},
                onnx_mib=os.path.getsize(path) / 2**20,
            )
        )
    return rows


def _pytorch_step(segmentor, model, images, mode: str) -> Callable[[], None]:
    """PyTorch's whole-image forward or ``slide_inference`` on ``images`` (RGB 0-255)."""
    import torch

    shape = tuple(images.shape[2:])

    def step() -> None:
        with torch.no_grad():
            if mode == 'whole':
                model(images)
            else:
                inputs = (images.flip(1) if model.flip_channels else images) - model.mean
                metas = [dict(img_shape=shape, ori_shape=shape)] * len(images)
                segmentor.slide_inference(inputs / model.std, metas)

    return step


def _ort_step(session, array, mode: str, crop, stride, batch: int) -> Callable[[], None]:
    """onnxruntime's whole-image run, or the same windows batched as PyTorch batches them."""
    if mode == 'whole':
        return lambda: session(array)
    return lambda: session.slide(array, crop, stride, batch)


def format_table(rows: list[dict], levels: list[str]) -> str:
    """Markdown: seconds per call (median and minimum), and PyTorch's median time over
    onnxruntime's."""
    header = ['model', 'case', 'PyTorch s'] + [f'ORT ({level}) s' for level in levels]
    header += [f'PyTorch / ORT ({levels[0]})', 'ONNX MiB']
    lines = ['| ' + ' | '.join(header) + ' |', '|' + ' --- |' * len(header)]
    for row in rows:
        medians, minima = row['medians'], row['minima']
        names = ['pytorch'] + [f'ort-{level}' for level in levels]
        cells = [row['model'], row['case']]
        cells += [f'{medians[name]:.3f} (min {minima[name]:.3f})' for name in names]
        cells += [f'{medians["pytorch"] / medians[f"ort-{levels[0]}"]:.2f}x']
        cells += [f'{row["onnx_mib"]:.1f}']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mae_seg.compat import setup_openmmlab

    setup_openmmlab()  # before mmengine reads a config or a checkpoint
    import onnxruntime
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for config in args.configs:
            if not os.path.isfile(config):
                print(f'onnx_speed.py: error: config {config} does not exist', file=sys.stderr)
                return 2
            rows += measure(config, args, workdir)
    print(
        f'torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, '
        f'{args.threads} threads, median (and minimum) of {args.rounds} rounds after '
        f'{args.warmup} warm-up'
    )
    print(format_table(rows, args.ort_levels))
    return 0


if __name__ == '__main__':
    sys.exit(main())
