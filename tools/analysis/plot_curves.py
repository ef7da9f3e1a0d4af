"""Loss, lr and validation mIoU of a training run against the iteration, one PNG.

Examples:
    python tools/analysis/plot_curves.py work_dirs/mae-base_upernet_ade20k
    python tools/analysis/plot_curves.py WORK_DIR --out curves/run1.png --metric mAcc

Reads the ``<timestamp>/vis_data/scalars.json`` that mmengine writes in the work directory
(``tools/train.py --work-dir``). A resumed or restarted run has several timestamp folders:
they are joined in order, a later run replacing the earlier points from its first iteration
on (``mae_seg.visualization.curves.join_runs`` says why). Writes ``WORK_DIR/curves.png``
unless ``--out`` says otherwise, and prints one line: where, which curves, the iterations
covered, the number of validations and the last value of the metric.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Plot the training curves of a work directory')
    parser.add_argument('work_dir', help='the --work-dir of a training run (or one <timestamp>/)')
    parser.add_argument('--out', help='the PNG to write (default: WORK_DIR/curves.png)')
    parser.add_argument(
        '--metric', default='mIoU', help='validation scalar of the last panel (default: mIoU)'
    )
    parser.add_argument('--title', default='', help='figure title (default: none)')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mae_seg.errors import CurvesError
    from mae_seg.visualization import load_curves, plot_curves

    out = Path(args.out) if args.out else Path(args.work_dir) / 'curves.png'
    try:
        curves = load_curves(args.work_dir)
        summary = curves.summary(args.metric)
        plot_curves(curves, out, metric=args.metric, title=args.title)
    except (CurvesError, OSError) as error:
        print(f'plot_curves.py: error: {error}', file=sys.stderr)
        return 2
    print(f'wrote {out}: {summary}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
