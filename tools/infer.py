"""Segment your own images with a trained model.

``python tools/infer.py CONFIG CHECKPOINT INPUTS... --out-dir DIR [--mode whole|slide]``

INPUTS are image files, folders (their images) or glob patterns. For each image it writes
``DIR/labels/NAME.png`` (the label map: one class index a pixel) and
``DIR/overlays/NAME.png`` (the prediction painted over the image in the classes' colours).
"""

from __future__ import annotations

import argparse
import sys

from mmengine.config import DictAction


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='infer.py', description='Segment images with a trained segmentor'
    )
    parser.add_argument('config', help='config file the model was trained with')
    parser.add_argument('checkpoint', help='trained weights, e.g. work_dirs/.../iter_160000.pth')
    parser.add_argument('inputs', nargs='+', help='image files, folders or glob patterns')
    parser.add_argument('--out-dir', required=True, help='where labels/ and overlays/ go')
    parser.add_argument(
        '--mode',
        choices=['whole', 'slide'],
        help="whole image in one pass or sliding windows (default: the config's test_cfg)",
    )
    parser.add_argument(
        '--device', default=None, help='cpu, cuda or cuda:N (default: cuda if there is one)'
    )
    parser.add_argument(
        '--batch-size',
        type=int,
        default=None,
        help='sliding windows a forward pass (default: test_cfg.window_batch_size, else 8)',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs',
    )
    args = parser.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f'--batch-size must be at least 1, got {args.batch_size}')
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mae_seg.compat import setup_openmmlab

    setup_openmmlab()  # before mmengine reads a config or a checkpoint
    import torch
    from mmengine.utils import ProgressBar
    from mmseg.visualization import SegLocalVisualizer

    from mae_seg.apis.inference import (
        build_segmentor,
        check_images_readable,
        find_images,
        plan_outputs,
        segment_image,
    )
    from mae_seg.errors import CheckpointError, ConfigError

    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        images = find_images(args.inputs)
        check_images_readable(images)
        jobs = plan_outputs(images, args.out_dir)
        model = build_segmentor(
            args.config,
            args.checkpoint,
            device=device,
            mode=args.mode,
            window_batch_size=args.batch_size,
            cfg_options=args.cfg_options,
        )
        visualizer = SegLocalVisualizer(name='infer', alpha=0.5)
        meta = model.dataset_meta
        visualizer.set_dataset_meta(classes=meta['classes'], palette=meta.get('palette'))
        mode = model.test_cfg.mode
        print(f'segmenting {len(jobs)} images on {device}, {mode} inference -> {args.out_dir}')
        progress = ProgressBar(len(jobs), file=sys.stderr)
        for job in jobs:
            segment_image(model, job, visualizer)
            progress.update()
        sys.stderr.write('\n')
    except (ConfigError, CheckpointError) as error:
        print(f'infer.py: error: {error}', file=sys.stderr)
        return 2
    print(f'wrote {args.out_dir}/labels/*.png (class indices) and {args.out_dir}/overlays/*.png')
    return 0


if __name__ == '__main__':
    sys.exit(main())
