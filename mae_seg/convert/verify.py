"""Checking a conversion: MAEViT with the converted weights against a reference model with the
source's: transformers' own ViTMAE / ViT for transformers checkpoints, timm's ViT otherwise."""

from __future__ import annotations

import os
import tempfile

import torch
from safetensors.torch import save_file as save_safetensors
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from ..errors import ConversionError
from ..models import MAEViT
from .convert import Conversion
from .layouts import mae_vit_to_timm

__all__ = [
    'VERIFY_TOLERANCE',
    'describe_verification',
    'verify',
    'verify_against_timm',
    'verify_against_transformers',
]

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


def _mae_vit(conversion: Conversion, num_heads: int, **overrides) -> MAEViT:
    """MAEViT with the converted weights; absent layer scales are 1, absent tables 0."""
    arch = conversion.architecture
    model = MAEViT(
        **arch.mae_vit_kwargs(num_heads, norm_eps=conversion.norm_eps),
        init_values=1.0,
        **overrides,
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
        conversion: the result of :func:`~mae_seg.convert.convert_checkpoint`.
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
    reference = _timm_reference(conversion, num_heads)
    ours = _mae_vit(conversion, num_heads, out_indices=list(range(arch.num_layers)))
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


def _transformers_reference(conversion: Conversion, num_heads: int) -> nn.Module:
    """transformers' ``ViTMAEModel`` (``ViTModel`` for a fine-tuned classifier) with nothing
    masked, holding the source tensors.

    They go through transformers' own ``from_pretrained`` (its checkpoint key handling, not
    ours), from a temporary folder with the encoder tensors under their hub names.
    """
    try:
        import transformers
    except ImportError as error:
        raise ConversionError(
            "--verify of a transformers checkpoint compares with transformers' own model; "
            'install it (pip install transformers) or leave out --verify'
        ) from error
    arch = conversion.architecture
    values = dict(
        hidden_size=arch.embed_dims,
        num_hidden_layers=arch.num_layers,
        num_attention_heads=num_heads,
        intermediate_size=arch.mlp_ratio * arch.embed_dims,
        image_size=arch.img_size,
        patch_size=arch.patch_size,
        num_channels=arch.in_channels,
        layer_norm_eps=conversion.norm_eps,
    )
    hub = conversion.hub_config
    if hub is not None:
        values = {**hub.values, **values}
    if hub is not None and hub.model_type == 'vit':
        model_class, options = transformers.ViTModel, dict(add_pooling_layer=False)
        config = transformers.ViTConfig.from_dict(values)
    else:
        model_class, options = transformers.ViTMAEModel, {}
        config = transformers.ViTMAEConfig.from_dict({**values, 'mask_ratio': 0.0})
    dropped = set(conversion.converted.dropped)
    encoder = {
        key.removeprefix('vit.'): value.float().contiguous()
        for key, value in conversion.source_state_dict.items()
        if key not in dropped
    }
    with tempfile.TemporaryDirectory() as folder:
        save_safetensors(encoder, os.path.join(folder, 'model.safetensors'), {'format': 'pt'})
        config.save_pretrained(folder)
        model, info = model_class.from_pretrained(folder, output_loading_info=True, **options)
    if info['missing_keys'] or info['unexpected_keys']:
        raise ConversionError(
            f'transformers did not take the source tensors as its own: missing '
            f'{sorted(info["missing_keys"])}, unexpected {sorted(info["unexpected_keys"])}'
        )
    return model.float().eval()


def verify_against_transformers(conversion: Conversion, num_heads: int, seed: int = 0) -> float:
    """Largest absolute difference of the final tokens, cls included, on a random image.

    The reference is transformers' ``ViTMAEModel`` with ``mask_ratio=0`` and an ordered
    ``noise``, so no patch is masked or shuffled (``ViTModel`` for classifiers), built from
    the source's ``config.json`` and holding the source tensors; MAEViT holds the converted
    ones. Both run at the checkpoint's image size; the tokens are compared after the final
    norm.

    Raises:
        ConversionError: transformers is not installed.
    """
    arch = conversion.architecture
    reference = _transformers_reference(conversion, num_heads)
    ours = _mae_vit(conversion, num_heads, output_cls_token=True).eval()
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn(1, arch.in_channels, arch.img_size, arch.img_size, generator=generator)
    options = {}
    if reference.config.model_type == 'vit_mae':  # ascending noise keeps the patch order
        options['noise'] = torch.arange(arch.grid**2, dtype=torch.float32)[None]
    with torch.no_grad():
        expected = reference(pixel_values=image, **options).last_hidden_state
        [(patch_map, cls_token)] = ours(image)
    actual = torch.cat([cls_token[:, None], patch_map.flatten(2).transpose(1, 2)], dim=1)
    if actual.shape != expected.shape:
        raise ConversionError(
            f'transformers returned {tuple(expected.shape)} tokens, MAEViT {tuple(actual.shape)}'
        )
    return float((actual - expected).abs().max())


def describe_verification(conversion: Conversion) -> str:
    """What :func:`verify` compares, with which model, for the user."""
    if conversion.layout != 'transformers':
        return f'{conversion.architecture.num_layers} blocks vs timm VisionTransformer'
    hub = conversion.hub_config
    model = 'ViTModel' if hub is not None and hub.model_type == 'vit' else 'ViTMAEModel'
    return f'final tokens vs transformers {model}'


def verify(conversion: Conversion, num_heads: int, seed: int = 0) -> float:
    """Compare the conversion with the reference of its layout (see :func:`describe_verification`).

    Returns:
        the maximum absolute difference of the compared features.
    """
    if conversion.layout == 'transformers':
        return verify_against_transformers(conversion, num_heads, seed)
    return verify_against_timm(conversion, num_heads, seed)
