"""Export a trained segmentor to one ONNX file (no mmdeploy needed).

``python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT OUT.onnx [--shape H W]
[--dynamic] [--opset N] [--verify] [--cfg-options KEY=VALUE ...]``

The file takes ``input`` (float32 ``(N, 3, H, W)``, RGB 0-255; normalisation inside) and
gives ``seg_logits`` (float32 ``(N, num_classes, H, W)``). ``--dynamic``: one file for every
batch size and image size. ``--verify``: onnxruntime against PyTorch at the export's size
and, with ``--dynamic``, at two sizes the export never saw; a file that fails the check is
removed (exit 1). See docs/deployment.md.
"""

from __future__ import annotations

import argparse
import os
import sys

from mmengine.config import DictAction


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='pytorch2onnx.py', description='Export a segmentor to ONNX (whole-image forward)'
    )
    parser.add_argument('config', help='config file the model was trained with')
    parser.add_argument('checkpoint', help='trained segmentor weights (.pth)')
    parser.add_argument('out', help='the .onnx file to write')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help="example input size (default: the config's crop size, else 512 512); "
        'without --dynamic the only size the file takes',
    )
    parser.add_argument(
        '--dynamic', action='store_true', help='batch, height and width symbolic: any size'
    )
    parser.add_argument('--opset', type=int, default=None, help='ONNX opset (default: 18)')
    parser.add_argument(
        '--verify',
        action='store_true',
        help='compare onnxruntime with PyTorch (max abs logit difference) after exporting',
    )
    parser.add_argument(
        '--tolerance',
        type=float,
        default=1e-3,
        help='--verify fails (exit 1, OUT removed) above this max abs logit difference '
        '(default 1e-3)',
    )
    parser.add_argument('--force', action='store_true', help='replace OUT if it exists')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, e.g. model.test_cfg.mode=whole',
    )
    args = parser.parse_args(argv)
    if args.shape is not None and min(args.shape) < 1:
        parser.error(f'--shape must be positive, got {args.shape}')
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mae_seg.compat import setup_openmmlab

    setup_openmmlab()  # before mmengine reads a config or a checkpoint
    from mae_seg.apis.inference import build_segmentor
    from mae_seg.deploy import (
        DEFAULT_OPSET,
        SegmentorForExport,
        export_onnx,
        min_input_size,
        unseen_sizes,
        verify_onnx,
    )
    from mae_seg.errors import CheckpointError, ConfigError

    try:
        segmentor = build_segmentor(
            args.config, args.checkpoint, device='cpu', mode='whole', cfg_options=args.cfg_options
        )
        model = SegmentorForExport(segmentor).eval()
        crop = segmentor.data_preprocessor.size or (512, 512)
        shape = tuple(args.shape or crop)
        opset = DEFAULT_OPSET if args.opset is None else args.opset
        export_onnx(model, args.out, shape, args.dynamic, opset, overwrite=args.force)
    except (ConfigError, CheckpointError) as error:
        print(f'pytorch2onnx.py: error: {error}', file=sys.stderr)
        return 2
    kind = 'any batch and size' if args.dynamic else f'batch 1, {shape[0]}x{shape[1]} only'
    print(f'wrote {args.out} (opset {opset}, {kind})')
    if not args.verify:
        return 0
    sizes = [shape, *unseen_sizes(shape, min_input_size(model))] if args.dynamic else [shape]
    try:
        checks = verify_onnx(model, args.out, sizes, batch=2 if args.dynamic else 1)
    except ConfigError as error:
        return _verify_failed(args.out, str(error))
    for check in checks:
        print(
            f'verify {check.size[0]}x{check.size[1]} (batch {check.batch}): output '
            f'{"x".join(map(str, check.output_shape))}, max abs logit difference '
            f'onnxruntime vs PyTorch {check.max_abs_diff:.2e}'
        )
    worst = max(check.max_abs_diff for check in checks)
    if worst > args.tolerance:
        return _verify_failed(args.out, f'{worst:.2e} > --tolerance {args.tolerance:g}')
    print(f'verify: ok, every difference <= {args.tolerance:g}')
    return 0


def _verify_failed(out: str, reason: str) -> int:
    """Removes ``out``, which does not compute what the model does, and says so: exit 1."""
    os.remove(out)
    print(f'pytorch2onnx.py: verify failed: {reason}; removed {out}', file=sys.stderr)
    return 1


if __name__ == '__main__':
    sys.exit(main())
