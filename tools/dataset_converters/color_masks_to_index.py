"""Convert colour-coded masks to the index PNGs mmseg's loaders read.

Examples:
    python tools/dataset_converters/color_masks_to_index.py masks_rgb/ annotations/ \\
        --colours labelmap.txt
    python tools/dataset_converters/color_masks_to_index.py masks_rgb/ annotations/ \\
        --colours classes.csv --unknown-index 255

``--colours``: CVAT's ``labelmap.txt`` (``name:r,g,b::``), a CSV (``name,r,g,b``) or a JSON
(``{"name": [r, g, b]}`` or ``{"classes": [...], "palette": [...]}``); class ``k`` is the
``k``-th line. A mask with a colour not in the list is reported (file, colour, pixel count)
and not written, unless ``--unknown-index`` gives such pixels an index (255: ignored by the
loss); the first 10 unknown colours are named, the rest counted. Grey masks (one channel
or equal channels) with unlisted values are index masks already: named in one line, not
written. Outputs are palette PNGs (indices to the loader, class colours to a viewer), each
written whole or not at all. Exit status 2 if a colour was unknown.
"""

from __future__ import annotations

import argparse
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Colour-coded masks to index PNGs')
    parser.add_argument('source', help='folder of colour-coded masks (searched recursively)')
    parser.add_argument('target', help='folder for the index PNGs (same sub-folders)')
    parser.add_argument(
        '--colours', required=True, help='class-colour file: labelmap.txt, .csv or .json'
    )
    parser.add_argument('--suffix', default='.png', help='mask file ending (default .png)')
    parser.add_argument(
        '--unknown-index',
        type=int,
        choices=range(256),
        metavar='0-255',
        help='give unlisted colours this index (e.g. 255, ignored) instead of refusing the mask',
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mae_seg.datasets.color_masks import convert_colour_masks, read_class_colours
    from mae_seg.errors import ColourMaskError

    try:
        classes = read_class_colours(args.colours)
        report = convert_colour_masks(
            args.source, args.target, classes, args.suffix, args.unknown_index
        )
    except (ColourMaskError, OSError) as error:
        print(f'color_masks_to_index.py: error: {error}', file=sys.stderr)
        return 2
    grey = report.grey_summary()
    if grey:
        print(f'color_masks_to_index.py: error: {grey}', file=sys.stderr)
    shown, more = report.unknown_shown()
    for unknown in shown:
        if args.unknown_index is None:
            print(
                f'color_masks_to_index.py: error: {unknown}; add it to {args.colours} or '
                'pass --unknown-index 255',
                file=sys.stderr,
            )
        else:
            print(f'color_masks_to_index.py: {unknown}: given index {args.unknown_index}')
    if more:
        print(
            f'color_masks_to_index.py: {more}',
            file=sys.stderr if args.unknown_index is None else sys.stdout,
        )
    print(
        f'wrote {len(report.converted)} index PNGs to {args.target} '
        f'({len(classes.names)} classes: {", ".join(classes.names)})'
    )
    if report.skipped:
        print(
            f'color_masks_to_index.py: error: {len(report.skipped)} masks not written '
            f'({len(report.skipped) - len(report.grey)} with unknown colours, '
            f'{len(report.grey)} grey)',
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
