"""Test (and evaluate) a segmentor, as mmseg's ``tools/test.py``.

``python tools/test.py CONFIG CHECKPOINT [--tta] [--show-dir DIR] [options]``; several GPUs
or nodes: ``tools/dist_test.sh`` (torchrun) or ``tools/slurm_test.sh``.
"""

from __future__ import annotations

import argparse
import os
import sys

from mmengine.config import DictAction


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir for logs and the metrics (json) of this test')
    parser.add_argument('--out', help='directory to save the predictions for offline evaluation')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where images painted with ground truth and prediction are saved '
        '(under vis_data/vis_image): every default_hooks.visualization.interval-th image, '
        "50 in mmseg's runtime; set it to 1 with --cfg-options to paint all",
    )
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs such as '
        'test_dataloader.dataset.data_root=PATH; lists as key="[a,b]"',
    )
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher',
    )
    parser.add_argument(
        '--tta',
        action='store_true',
        help="test-time augmentation: the config's tta_pipeline merged by its tta_model",
    )
    parser.add_argument(
        '--check',
        action='store_true',
        help='only check the config, its checkpoints and data sets, then exit '
        '(tools/dist_test.sh does this before starting its processes)',
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mae_seg.compat import setup_openmmlab

    setup_openmmlab()  # before mmengine reads a config or a checkpoint
    from mae_seg.errors import CheckpointError, ConfigError
    from mae_seg.runner import check_run_inputs, load_config, setup_test_config, test

    try:
        cfg = load_config(args.config, args.cfg_options, check=True)
        setup_test_config(
            cfg,
            args.config,
            args.checkpoint,
            work_dir=args.work_dir,
            tta=args.tta,
            show=args.show,
            show_dir=args.show_dir,
            wait_time=args.wait_time,
            out=args.out,
            launcher=args.launcher,
        )
        if args.check:
            check_run_inputs(cfg, training=False)
            return 0
        test(cfg, verbose=args.verbose)
    except (ConfigError, CheckpointError) as error:
        print(f'test.py: error: {error}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
