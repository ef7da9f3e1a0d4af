"""Batched sliding windows against mmseg's one window at a time: same logits? how fast?

``python tools/analysis/slide_batching.py [--config CONFIG] [--checkpoint CKPT]
[--size 512x683] [--scales 0.5,0.75,1.0,...] [--window-batch-size 8] [--rounds 3]``

Builds the config's segmentor twice with the same weights (the checkpoint's, else random
with seed 0): as mmseg's ``EncoderDecoder`` and as ``BatchedSlideEncoderDecoder``, runs
slide inference on one random image of ``--size`` (with ``--scales``: on each scale of it,
as test-time augmentation does, all scales' windows batched together), alternating the two,
and prints the median and minimum time per image and the largest logit difference. A view
smaller than a window is padded to one first, as ``BatchedSlideEncoderDecoder`` pads it (mmseg
would run a smaller window), so that both run the same windows.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

DEFAULT_CONFIG = 'configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='slide_batching.py', description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--checkpoint', help='segmentor weights (default: random, seed 0)')
    parser.add_argument('--size', default='512x683', help='image HxW (an ADE20K test image)')
    parser.add_argument('--scales', help='comma-separated scales of the image, as in TTA')
    parser.add_argument('--window-batch-size', type=int, default=8)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--device', default='cpu')
    return parser.parse_args(argv)


def build_pair(args: argparse.Namespace):
    """``(mmseg's EncoderDecoder, BatchedSlideEncoderDecoder)`` with equal weights."""
    import torch
    from mmengine.config import ConfigDict
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from mae_seg.io import extract_state_dict, load_checkpoint_file
    from mae_seg.runner import load_config

    cfg = load_config(args.config)
    init_default_scope('mmseg')
    model_cfg = cfg.model
    model_cfg.update(pretrained=None, train_cfg=None)
    model_cfg.backbone.init_cfg = None
    model_cfg.test_cfg.window_batch_size = args.window_batch_size
    torch.manual_seed(0)
    reference = MODELS.build(ConfigDict(model_cfg, type='EncoderDecoder'))
    if args.checkpoint:
        reference.load_state_dict(extract_state_dict(load_checkpoint_file(args.checkpoint)))
    else:
        # init_weights logs every tensor's initialisation at INFO.
        MMLogger.get_current_instance().setLevel(logging.WARNING)
        reference.init_weights()
    batched = MODELS.build(ConfigDict(model_cfg, type='BatchedSlideEncoderDecoder'))
    batched.load_state_dict(reference.state_dict())
    return reference.to(args.device).eval(), batched.to(args.device).eval()


def make_views(args: argparse.Namespace, preprocessor, crop: tuple[int, int]) -> list:
    """The image (at each scale), normalised by the config's data preprocessor and padded
    at its bottom and right to at least one ``crop`` window."""
    import torch
    import torch.nn.functional as F

    height, width = (int(side) for side in args.size.split('x'))
    image = torch.randint(0, 256, (3, height, width), generator=torch.Generator().manual_seed(0))
    scales = [float(s) for s in args.scales.split(',')] if args.scales else [1.0]
    views = []
    for scale in scales:
        size = (round(height * scale), round(width * scale))
        scaled = F.interpolate(image[None].float(), size=size, mode='bilinear')[0].round()
        inputs = preprocessor(dict(inputs=[scaled.to(torch.uint8)]), False)['inputs']
        padding = (0, max(crop[1] - size[1], 0), 0, max(crop[0] - size[0], 0))
        inputs = F.pad(inputs, padding, value=preprocessor.pad_val)
        size = tuple(inputs.shape[2:])
        views.append((inputs, [dict(ori_shape=size, img_shape=size, pad_shape=size)]))
    return views


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mae_seg.compat import setup_openmmlab

    setup_openmmlab()  # before mmengine reads a config or a checkpoint
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from mae_seg.models.segmentors import sliding_windows

    reference, batched = build_pair(args)
    views = make_views(args, reference.data_preprocessor, tuple(reference.test_cfg.crop_size))
    images = [inputs for inputs, _ in views]
    metas = [meta for _, meta in views]

    def one_at_a_time():
        return [reference.slide_inference(x, [dict(m) for m in meta]) for x, meta in views]

    def in_batches():
        return batched.slide_logits(images, metas)

    times: dict[str, list[float]] = {'one at a time (mmseg)': [], 'batched': []}
    with torch.no_grad():
        expected, actual = one_at_a_time(), in_batches()  # warm-up, and the comparison
        for _ in range(args.rounds):
            for name, run in zip(times, (one_at_a_time, in_batches)):
                start = time.perf_counter()
                run()
                if args.device.startswith('cuda'):
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - start)
    diff = max((a - e).abs().max().item() for a, e in zip(actual, expected))
    same = all(torch.equal(a.argmax(1), e.argmax(1)) for a, e in zip(actual, expected))
    crop, stride = reference.test_cfg.crop_size, reference.test_cfg.stride
    windows = sum(len(sliding_windows(tuple(x.shape[2:]), crop, stride)) for x in images)
    print(
        f'{Path(args.config).stem}: {args.size} image, {len(views)} scale(s), {windows} '
        f'windows of {crop[0]}x{crop[1]}, stride {stride[0]}; {args.device}, '
        f'{torch.get_num_threads()} threads, window batch {args.window_batch_size}'
    )
    print(f'{"way":<24}{"median s":>10}{"min s":>10}{"speed-up":>10}')
    base = statistics.median(times['one at a time (mmseg)'])
    for name, values in times.items():
        median = statistics.median(values)
        print(f'{name:<24}{median:>10.3f}{min(values):>10.3f}{base / median:>9.2f}x')
    print(f'largest logit difference: {diff:.2e}; predictions identical: {same}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
