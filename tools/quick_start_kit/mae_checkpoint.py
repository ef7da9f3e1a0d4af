"""A tiny MAE pre-training checkpoint in the official layout, standing in for a download."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

__all__ = ['official_mae_state_dict', 'save_official_mae_checkpoint']


def official_mae_state_dict(
    embed_dims: int = 128,
    depth: int = 4,
    num_heads: int = 2,
    patch_size: int = 16,
    img_size: int = 224,
    decoder_dims: int = 64,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Random weights with the key names and shapes of facebookresearch/mae's pre-training.

    The encoder is timm's ``VisionTransformer`` (``cls_token``, ``pos_embed``,
    ``patch_embed.proj.*``, ``blocks.<i>.*``, ``norm.*``), as MAE's ``models_mae`` builds
    it; the decoder (``mask_token``, ``decoder_*``) is what the converter must drop.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        encoder = VisionTransformer(
            img_size=img_size,
            patch_size=patch_size,
            embed_dim=embed_dims,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=4,
            qkv_bias=True,
            num_classes=0,
            norm_layer=norm_layer,
        )
        state = dict(encoder.state_dict())
        num_tokens = (img_size // patch_size) ** 2 + 1
        state['mask_token'] = trunc_normal_(torch.empty(1, 1, decoder_dims), std=0.02)
        decoder = nn.ModuleDict(
            dict(
                decoder_embed=nn.Linear(embed_dims, decoder_dims),
                decoder_blocks=nn.ModuleList(
                    [Block(decoder_dims, max(num_heads // 2, 1), 4, qkv_bias=True)]
                ),
                decoder_norm=norm_layer(decoder_dims),
                decoder_pred=nn.Linear(decoder_dims, patch_size**2 * 3),
            )
        )
        state.update(decoder.state_dict())
        state['decoder_pos_embed'] = torch.zeros(1, num_tokens, decoder_dims)
    return state


def save_official_mae_checkpoint(path: str | Path, **kwargs) -> Path:
    """Write ``{'model': official_mae_state_dict(**kwargs)}`` to ``path``, as MAE releases it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({'model': official_mae_state_dict(**kwargs)}, path)
    return path
