"""Parameters and FLOPs of a segmentor config, attention included.

Examples:
    python tools/analysis/get_flops.py configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py
    python tools/analysis/get_flops.py CONFIG --shape 512 683

Counts what mmseg's ``tools/analysis/get_flops.py`` counts, the ``mode='tensor'`` forward
(backbone, neck and decode head; no auxiliary head) of one image, but with torch's
``FlopCounterMode`` instead of mmengine's counter, which skips
``F.scaled_dot_product_attention`` (about a fifth of ViT-B at 512x512). Every matrix product
and convolution is counted, attention kernels included: the CPU flash kernel gets the
formula torch gives its CUDA siblings.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

import torch
from mmengine.config import DictAction
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

__all__ = ['Complexity', 'count_complexity', 'main']

#: FLOPs outside every direct child's ``__call__``.
OTHER = 'other'

#: Ops that compute attention, counted together as the attention share.
_ATTENTION_OP_NAMES = ('scaled_dot_product', 'flash_attention', 'efficient_attention')


def _cpu_flash_formula(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _custom_formulas() -> dict:
    kernel = getattr(torch.ops.aten, '_scaled_dot_product_flash_attention_for_cpu', None)
    return {} if kernel is None else {kernel: _cpu_flash_formula}


@dataclass
class Complexity:
    """What :func:`count_complexity` measured.

    Args:
        flops: FLOPs of the forward (a multiply-add is 2).
        attention_flops: the part in attention kernels.
        params: parameters of the whole model.
        flops_by_module: FLOPs of each direct child of the model, and :data:`OTHER` for
            those outside every child's ``__call__`` (the decode head of an
            ``EncoderDecoder``, whose ``forward`` mmseg calls directly).
        params_by_module: parameters of each direct child of the model.
    """

    flops: int
    attention_flops: int
    params: int
    flops_by_module: dict[str, int] = field(default_factory=dict)
    params_by_module: dict[str, int] = field(default_factory=dict)


def count_complexity(model: nn.Module, inputs: torch.Tensor) -> Complexity:
    """FLOPs of ``model(inputs, mode='tensor')`` without autograd, and parameters.

    Args:
        model: an mmseg segmentor (or any module whose forward takes ``mode='tensor'``).
        inputs: ``(B, 3, H, W)`` images.
    """
    model.eval()
    counter = FlopCounterMode(display=False, depth=2, custom_mapping=_custom_formulas())
    with torch.no_grad(), counter:
        model(inputs, mode='tensor')
    counts = counter.get_flop_counts()
    total = counts['Global']
    attention = sum(
        flops for op, flops in total.items() if any(name in str(op) for name in _ATTENTION_OP_NAMES)
    )
    root = type(model).__name__
    flops_by_module = {}
    for name, _ in model.named_children():
        flops_by_module[name] = sum(counts.get(f'{root}.{name}', {}).values())
    # mmseg's EncoderDecoder calls decode_head.forward() directly, past the module hooks
    # that attribute FLOPs to a child.
    flops_by_module[OTHER] = sum(total.values()) - sum(flops_by_module.values())
    params_by_module = {
        name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()
    }
    return Complexity(
        flops=sum(total.values()),
        attention_flops=attention,
        params=sum(p.numel() for p in model.parameters()),
        flops_by_module={k: v for k, v in flops_by_module.items() if v},
        params_by_module={k: v for k, v in params_by_module.items() if v},
    )


def format_complexity(complexity: Complexity, shape: tuple[int, int]) -> str:
    """A few lines: totals, attention share, and the per-module split."""
    lines = [
        f'input shape: 1x3x{shape[0]}x{shape[1]}',
        f'FLOPs: {complexity.flops / 1e9:.2f} G ({complexity.flops / 2e9:.2f} G multiply-adds, '
        "what mmseg's get_flops.py calls FLOPs)",
        f'  of which attention: {complexity.attention_flops / 1e9:.2f} G '
        f'({complexity.attention_flops / max(complexity.flops, 1):.1%}'
        + (
            f', {complexity.attention_flops / backbone:.1%} of the backbone)'
            if (backbone := complexity.flops_by_module.get('backbone'))
            else ')'
        ),
        f'params: {complexity.params / 1e6:.2f} M',
        '{:<20} {:>12} {:>10}'.format('module', 'GFLOPs', 'M params'),
    ]
    for name in {**complexity.params_by_module, **complexity.flops_by_module}:
        flops = complexity.flops_by_module.get(name, 0)
        params = complexity.params_by_module.get(name, 0)
        shown = f'{flops / 1e9:.2f}' if flops else '-'
        lines.append(f'{name:<20} {shown:>12} {params / 1e6:>10.2f}')
    if complexity.flops_by_module.get(OTHER):
        lines.append(f"{OTHER}: outside the children's module calls, e.g. the decode head of")
        lines.append("mmseg's EncoderDecoder, whose forward it calls directly")
    return '\n'.join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Parameters and FLOPs of a segmentor config')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        help="input image size H [W] (default: the config's crop_size, else 512)",
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs',
    )
    return parser.parse_args(argv)


def _input_shape(cfg, shape: list[int] | None) -> tuple[int, int]:
    if shape:
        if len(shape) > 2 or min(shape) < 1:
            raise ValueError(f'--shape {" ".join(map(str, shape))}: give H or H W')
        return (shape[0], shape[-1])
    crop = cfg.get('crop_size', (512, 512))
    return (int(crop[0]), int(crop[1]))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mae_seg.compat import setup_openmmlab

    setup_openmmlab()  # before mmengine reads a config or a checkpoint
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    from mae_seg.errors import ConfigError
    from mae_seg.runner import load_config

    try:
        cfg = load_config(args.config, args.cfg_options)
        shape = _input_shape(cfg, args.shape)
    except (ConfigError, ValueError) as error:
        print(f'get_flops.py: error: {error}', file=sys.stderr)
        return 2
    register_all_modules()
    # Weights do not change the count: build without loading any checkpoint.
    model_cfg = cfg.model.copy()
    model_cfg.pop('pretrained', None)
    model_cfg.get('backbone', {}).pop('init_cfg', None)
    model = MODELS.build(model_cfg)
    complexity = count_complexity(model, torch.randn(1, 3, *shape))
    print(format_complexity(complexity, shape))
    return 0


if __name__ == '__main__':
    sys.exit(main())
