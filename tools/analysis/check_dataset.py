"""Check a config's data sets before training: every pair, label and size, in one pass.

Examples:
    python tools/analysis/check_dataset.py \
        configs/mae/mae-base_upernet_8xb2-amp-160k_own-data-512x512.py
    python tools/analysis/check_dataset.py CONFIG --out-dir work_dirs/data_check \\
        --cfg-options train_dataloader.dataset.data_root=data/my_set

For each of the train/val/test dataloaders: pairs found, missing and unreadable; the
annotations' modes; their label values against ``num_classes`` after ``reduce_zero_label``
and ``ignore_index``; image against annotation size as the loaders read them; the class pixel
frequencies (table, and a bar plot in ``--out-dir``) and a few image | annotation overlays.
Each problem is one line naming the file, the value found and the fix; exit status 2 if any.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from mmengine.config import DictAction

PROBLEMS_SHOWN_PER_KIND = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Check the data sets of a config')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--out-dir',
        help='where class_pixels_<split>.png, overlays_<split>.png and problems.txt go',
    )
    parser.add_argument(
        '--workers', type=int, help='processes reading pairs (default: the CPUs available)'
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs such as '
        'train_dataloader.dataset.data_root=PATH',
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mae_seg.compat import setup_openmmlab

    setup_openmmlab()  # before mmengine reads a config or a checkpoint
    from mae_seg.datasets.dataset_report import check_dataset
    from mae_seg.errors import ConfigError
    from mae_seg.runner import load_config

    try:
        cfg = load_config(args.config, args.cfg_options, check=True)
        report = check_dataset(cfg, out_dir=args.out_dir, workers=args.workers)
    except (ConfigError, OSError) as error:
        print(f'check_dataset.py: error: {error}', file=sys.stderr)
        return 2
    print('\n'.join(report.lines))
    shown: Counter = Counter()
    for problem in report.problems:
        shown[problem.kind] += 1
        if shown[problem.kind] <= PROBLEMS_SHOWN_PER_KIND:
            print(f'check_dataset.py: error: {problem}', file=sys.stderr)
    for kind, count in shown.items():
        if count > PROBLEMS_SHOWN_PER_KIND:
            where = f' (all in {args.out_dir}/problems.txt)' if args.out_dir else ''
            print(
                f'check_dataset.py: error: {count - PROBLEMS_SHOWN_PER_KIND} more {kind} '
                f'problems{where}',
                file=sys.stderr,
            )
    for path in report.written:
        print(f'wrote {path}')
    if report.problems:
        print(f'{len(report.problems)} problems found')
        return 2
    print('no problems found')
    return 0


if __name__ == '__main__':
    sys.exit(main())
