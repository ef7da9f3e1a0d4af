"""Checking a conversion: MAEViT with the converted weights against timm's ViT with the source's."""

from __future__ import annotations

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from ..models import MAEViT
from .convert import Conversion
from .errors import ConversionError
from .layouts import mae_vit_to_timm

__all__ = ['VERIFY_TOLERANCE', 'verify_against_timm']

VERIFY_TOLERANCE = 1e-4


def _timm_reference(conversion: Conversion, num_heads: int) -> VisionTransformer:
    """timm's ViT holding the source weights.

    Official checkpoints give their own tensors; the other layouts go through
    :func:`mae_vit_to_timm`.
    """
    arch = conversion.architecture
    model = VisionTransformer(
        img_size=arch.img_size,
        patch_size=arch.patch_size,
        in_chans=arch.in_channels,
        num_classes=0,
        embed_dim=arch.embed_dims,
        depth=arch.num_layers,
        num_heads=num_heads,
        mlp_ratio=arch.mlp_ratio,
        qkv_bias=True,
        init_values=1.0 if arch.layer_scale else None,
        weight_init='skip',  # every weight is loaded below
    )
    if not arch.final_norm:
        model.norm = nn.Identity()
    if conversion.layout == 'official':
        dropped = set(conversion.converted.dropped)
        state = {k: v for k, v in conversion.source_state_dict.items() if k not in dropped}
    else:
        state = mae_vit_to_timm(conversion.state_dict).state_dict
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.eval()


def _mae_vit(conversion: Conversion, num_heads: int) -> MAEViT:
    """MAEViT with the converted weights; absent layer scales are 1, absent tables 0."""
    arch = conversion.architecture
    model = MAEViT(
        **arch.mae_vit_kwargs(num_heads),
        out_indices=list(range(arch.num_layers)),
        init_values=1.0,
    )
    result = model.load_state_dict(
        {k: v.float() for k, v in conversion.state_dict.items()}, strict=False
    )
    assert not result.unexpected_keys and set(result.missing_keys) == set(
        arch.keys_left_to_mae_vit()
    ), result
    return model.eval()


def verify_against_timm(conversion: Conversion, num_heads: int, seed: int = 0) -> float:
    """Largest absolute difference of the features of every block on a random image.

    MAEViT is built from the converted weights; the reference is timm's
    ``VisionTransformer`` with the source weights. Both run at the checkpoint's image size;
    the last block is compared after the final norm when the checkpoint has one.

    Args:
        conversion: the result of :func:`~mae_seg.checkpoint.convert_checkpoint`.
        num_heads: attention heads (the weights do not fix them).
        seed: seed of the random image.

    Returns:
        the maximum absolute difference over all ``(1, C, H/p, W/p)`` block outputs.

    Raises:
        ConversionError: the converted encoder has non-zero relative position bias, which
            timm's ViT cannot express.
    """
    arch = conversion.architecture
    tables = [v for k, v in conversion.state_dict.items() if 'relative_position_bias' in k]
    if any(bool(table.any()) for table in tables):
        raise ConversionError(
            'cannot verify against timm: the relative position bias tables are not zero and '
            "timm's VisionTransformer has none (an mmseg-layout file needs no conversion)"
        )
    reference, ours = _timm_reference(conversion, num_heads), _mae_vit(conversion, num_heads)
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn(1, arch.in_channels, arch.img_size, arch.img_size, generator=generator)

    expected: list[torch.Tensor] = []
    watched = [*reference.blocks[:-1], reference.norm if arch.final_norm else reference.blocks[-1]]
    hooks = [m.register_forward_hook(lambda m, i, out: expected.append(out)) for m in watched]
    try:
        with torch.no_grad():
            reference.forward_features(image)
            actual = ours(image)
    finally:
        for hook in hooks:
            hook.remove()
    grid = (arch.grid, arch.grid)
    diffs = [
        (a - e[:, 1:].reshape(1, *grid, -1).permute(0, 3, 1, 2)).abs().max()
        for a, e in zip(actual, expected)
    ]
    return float(torch.stack(diffs).max())
