"""Score an exported ONNX segmentor on the config's test set, through onnxruntime.

``python tools/deployment/deploy_test.py CONFIG MODEL.onnx [--mode whole|slide]``

The same data, post-processing and IoU metric as ``tools/test.py``, so the printed table
shows whether the exported model scores what the PyTorch one scores.
"""

from __future__ import annotations

import argparse
import sys

from mmengine.config import DictAction


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='deploy_test.py', description='Evaluate an ONNX segmentor with onnxruntime'
    )
    parser.add_argument('config', help='config file the model was trained and exported with')
    parser.add_argument('model', help='the .onnx file (tools/deployment/pytorch2onnx.py)')
    parser.add_argument(
        '--mode',
        choices=['whole', 'slide'],
        help="whole images or sliding windows (default: the config's model.test_cfg.mode)",
    )
    parser.add_argument(
        '--window-batch-size',
        type=int,
        default=1,
        help='sliding windows a session run (a file exported with --dynamic takes several)',
    )
    parser.add_argument(
        '--threads', type=int, default=None, help='onnxruntime intra-op threads (default: all)'
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, e.g. test_dataloader.dataset.data_root=PATH',
    )
    args = parser.parse_args(argv)
    if args.window_batch_size < 1:
        parser.error(f'--window-batch-size must be at least 1, got {args.window_batch_size}')
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mae_seg.compat import setup_openmmlab

    setup_openmmlab()  # before mmengine reads a config or a checkpoint
    from mae_seg.deploy import OnnxSegmentor
    from mae_seg.deploy.evaluate import evaluate_onnx
    from mae_seg.errors import ConfigError
    from mae_seg.runner import load_config

    try:
        cfg = load_config(args.config, args.cfg_options)
        session = OnnxSegmentor(args.model, threads=args.threads)
        metrics = evaluate_onnx(cfg, session, args.mode, args.window_batch_size)
    except ConfigError as error:
        print(f'deploy_test.py: error: {error}', file=sys.stderr)
        return 2
    print(' '.join(f'{name}: {value:.2f}' for name, value in metrics.items()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
