"""Train a segmentor, as mmseg's ``tools/train.py``: ``python tools/train.py CONFIG [options]``.

Several GPUs or nodes: ``tools/dist_train.sh`` (torchrun) or ``tools/slurm_train.sh``.
"""

from __future__ import annotations

import argparse
import os
import sys

from mmengine.config import DictAction


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        action='store_true',
        help='resume from the latest checkpoint in the work_dir automatically',
    )
    parser.add_argument(
        '--amp', action='store_true', help='enable automatic-mixed-precision training'
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs such as '
        'train_cfg.max_iters=1000 or model.backbone.drop_path_rate=0.2; lists as key="[a,b]"',
    )
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher',
    )
    parser.add_argument(
        '--check',
        action='store_true',
        help='only check the config, its checkpoints and data sets, then exit '
        '(tools/dist_train.sh does this before starting its processes)',
    )
    parser.add_argument(
        '--verbose',
        action='store_true',
        help='print the environment, the config and the hook table on the terminal too '
        '(always in the log file of the work dir)',
    )
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def report_check(cfg, config_path: str) -> int:
    """``--check``: every problem on stderr, one line each (exit 2), else one line on stdout."""
    from mae_seg.runner import preflight

    problems, summary = preflight(cfg)
    for problem in problems:
        print(f'train.py: error: {problem}', file=sys.stderr)
    if problems:
        return 2
    print(f'train.py: {config_path}: ok: {summary}')
    return 0


def stop(message: str, status: int) -> int:
    """Print ``message`` once for the run (not once per process) and stop its restarts."""
    from mae_seg.runner import claim_stop

    if claim_stop(message):
        print(message, file=sys.stderr, flush=True)
    return status


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mmengine.logging import MessageHub

    from mae_seg.compat import setup_openmmlab
    from mae_seg.errors import CheckpointError, ConfigError, NonFiniteLossError
    from mae_seg.runner import (
        deterministic_failure,
        load_config,
        record_stop,
        restart_count,
        setup_train_config,
        stop_reason,
        train,
    )

    setup_openmmlab()

    cfg = None
    try:
        cfg = load_config(args.config, args.cfg_options, check=not args.check)
        setup_train_config(
            cfg,
            args.config,
            work_dir=args.work_dir,
            resume=args.resume,
            amp=args.amp,
            launcher=args.launcher,
            restarted=restart_count() > 0,
        )
        if args.check:
            return report_check(cfg, args.config)
        if restart_count() and os.environ.get('RANK', '0') == '0':
            print(
                f'train.py: restart {restart_count()} of this run: resuming from the latest '
                f'checkpoint in {cfg.work_dir}',
                flush=True,
            )
        stopped = stop_reason(cfg.work_dir)
        if stopped:
            return stop(f'train.py: error: {stopped} (restarting would repeat it)', 1)
        summary = train(cfg, verbose=args.verbose)
    except (ConfigError, CheckpointError) as error:
        return stop(f'train.py: error: {error}', 2)
    except NonFiniteLossError as error:
        record_stop(cfg.work_dir, str(error))
        return stop(f'train.py: error: {error}', 1)
    except Exception as error:
        # A launcher restarts what ends here; the same failure twice is not worth a third.
        if cfg is not None:
            iteration = MessageHub.get_current_instance().get_info('iter')
            repeated = deterministic_failure(cfg.work_dir, error, iteration)
            if repeated:
                return stop(f'train.py: error: {repeated}', 2)
        raise
    if summary.world_size > 1:
        # One write: print() sends the text and the newline separately, and the lines of
        # ranks sharing one unbuffered stdout could then run together.
        sys.stdout.write(f'{summary}\n')
        sys.stdout.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())
