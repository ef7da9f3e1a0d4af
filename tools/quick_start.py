"""The quick start's own steps, which ``bash tools/quick_start.sh`` runs in order.

``python tools/quick_start.py data DIR`` writes the ADE20K-format shapes data set,
``folder-data DIR`` the same in the own-data folder layout (docs/own_data.md),
``checkpoint FILE`` a tiny MAE checkpoint in the official layout, and ``report WORK_DIR``
``miou_table.txt`` and ``curves.png`` from the quick start's runs.
"""

from __future__ import annotations

import argparse
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Steps of the quick start')
    steps = parser.add_subparsers(dest='step', required=True)
    data = steps.add_parser('data', help='write the shapes data set (ADEChallengeData2016 layout)')
    data.add_argument('root', help='the ADEChallengeData2016 directory to write')
    data.add_argument('--num-train', type=int, default=200)
    data.add_argument('--num-val', type=int, default=16)
    folder = steps.add_parser(
        'folder-data',
        help='write the shapes data set in the own-data folder layout (images/{train,val}, '
        'annotations/{train,val})',
    )
    folder.add_argument('root', help='the data set directory to write')
    folder.add_argument('--num-train', type=int, default=200)
    folder.add_argument('--num-val', type=int, default=16)
    folder.add_argument('--short-side', type=int, default=128, help='pixels')
    folder.add_argument(
        '--plant-faults',
        action='store_true',
        help='spoil four training pairs (labels out of range, RGB mask, missing annotation, '
        'size mismatch) for trying tools/analysis/check_dataset.py',
    )
    folder.add_argument(
        '--colour-masks',
        metavar='DIR',
        help='also write the annotations painted in class colours to DIR/{train,val} with '
        'DIR/labelmap.txt, for trying tools/dataset_converters/color_masks_to_index.py',
    )
    checkpoint = steps.add_parser(
        'checkpoint', help='write a random tiny MAE checkpoint in the official layout'
    )
    checkpoint.add_argument('path', help='the .pth file to write')
    report = steps.add_parser('report', help='write miou_table.txt and curves.png')
    report.add_argument('work_dir', help='the quick start work directory')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mae_seg.compat import setup_openmmlab

    setup_openmmlab()  # before mmengine reads a config or a checkpoint
    import quick_start_kit as quick_start

    if args.step == 'data':
        from tqdm import tqdm

        spec = quick_start.ShapesSpec(num_train=args.num_train, num_val=args.num_val)
        with tqdm(total=spec.num_train + spec.num_val, unit='image', mininterval=1) as bar:
            root = quick_start.make_shapes_dataset(args.root, spec, progress=bar.update)
        print(f'wrote {spec.num_train} training and {spec.num_val} validation images to {root}')
    elif args.step == 'folder-data':
        from tqdm import tqdm

        with tqdm(total=args.num_train + args.num_val, unit='image', mininterval=1) as bar:
            names = quick_start.make_folder_dataset(
                args.root, args.num_train, args.num_val, args.short_side, progress=bar.update
            )
        print(
            f'wrote {args.num_train} training and {args.num_val} validation images to {args.root}'
        )
        if args.plant_faults:
            for fault, path in quick_start.plant_faults(args.root, names).items():
                print(f'planted {fault}: {path}')
        if args.colour_masks:
            labelmap = quick_start.write_colour_masks(args.root, args.colour_masks)
            print(f'wrote colour masks to {args.colour_masks}/{{train,val}} and {labelmap}')
    elif args.step == 'checkpoint':
        path = quick_start.save_official_mae_checkpoint(args.path)
        print(f'wrote {path}')
    else:
        try:
            summary = quick_start.write_report(args.work_dir, len(quick_start.CLASSES))
        except (FileNotFoundError, ValueError) as error:
            print(f'quick_start.py: error: {error}', file=sys.stderr)
            return 2
        print(summary)
    return 0


if __name__ == '__main__':
    sys.exit(main())
