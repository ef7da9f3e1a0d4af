"""MAEViT: the MAE ViT encoder with relative position bias, for dense prediction at any size."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import FFN
from mmengine.logging import print_log
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import trunc_normal_
from mmseg.models.utils import PatchEmbed
from mmseg.registry import MODELS
from timm.layers import DropPath
from torch import nn
from torch.utils.checkpoint import checkpoint

from ...checkpoint import extract_state_dict, load_checkpoint_file, summarize_keys
from ..layers.attention import AttentionWorkspace, RelPosAttention
from ..layers.cache import GridCache, weights_key
from ..layers.positions import (
    Grid,
    fit_abs_pos_embed,
    parse_position_fit,
    relative_position_index,
    resize_abs_pos_embed,
)

__all__ = ['MAEViT', 'MAETransformerBlock']


class MAETransformerBlock(nn.Module):
    """Pre-norm ViT block with layer scale; parameter names as mmseg's BEiT/MAE layer.

    Args:
        embed_dims: channels ``C``.
        num_heads: attention heads.
        feedforward_channels: hidden channels of the FFN.
        grid: token grid the relative position bias table is made for.
        attn_drop_rate: dropout on attention weights.
        drop_path_rate: stochastic depth of both residual branches.
        num_fcs: linear layers in the FFN.
        act_cfg: FFN activation.
        norm_cfg: normalization layers (``ln1``, ``ln2`` for LayerNorm).
        init_values: initial layer-scale values ``gamma_1``, ``gamma_2``.
        position_fit: how the relative position table is fitted to another grid.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        feedforward_channels: int,
        grid: Grid,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        num_fcs: int = 2,
        act_cfg: dict | None = None,
        norm_cfg: dict | None = None,
        init_values: float = 0.1,
        position_fit: str = 'stretch',
    ) -> None:
        super().__init__()
        norm_cfg = norm_cfg or dict(type='LN')
        self.norm1_name, norm1 = build_norm_layer(norm_cfg, embed_dims, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.attn = RelPosAttention(
            embed_dims, num_heads, grid, True, attn_drop_rate, position_fit=position_fit
        )
        self.norm2_name, norm2 = build_norm_layer(norm_cfg, embed_dims, postfix=2)
        self.add_module(self.norm2_name, norm2)
        self.ffn = FFN(
            embed_dims=embed_dims,
            feedforward_channels=feedforward_channels,
            num_fcs=num_fcs,
            ffn_drop=0.0,
            dropout_layer=None,
            act_cfg=act_cfg or dict(type='GELU'),
            add_identity=False,
        )
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.gamma_1 = nn.Parameter(init_values * torch.ones(embed_dims))
        self.gamma_2 = nn.Parameter(init_values * torch.ones(embed_dims))

    @property
    def norm1(self) -> nn.Module:
        return getattr(self, self.norm1_name)

    @property
    def norm2(self) -> nn.Module:
        return getattr(self, self.norm2_name)

    def forward(
        self,
        x: torch.Tensor,
        grid: Grid,
        rel_pos_index: torch.Tensor,
        workspace: AttentionWorkspace | None = None,
    ) -> torch.Tensor:
        """``(B, 1 + H*W, C)`` -> ``(B, 1 + H*W, C)``; ``workspace`` only without autograd."""
        x = self._residual(
            x, self.gamma_1, self.attn(self.norm1(x), grid, rel_pos_index, workspace)
        )
        return self._residual(x, self.gamma_2, self.ffn(self.norm2(x)))

    def _residual(self, x: torch.Tensor, gamma: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        """``x + drop_path(gamma * branch)``, in one pass where no path is dropped."""
        if self.training and isinstance(self.drop_path, DropPath):
            return x + self.drop_path(gamma * branch)
        return torch.addcmul(x, gamma, branch)


def _to_2tuple(img_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(img_size, int):
        return (img_size, img_size)
    if isinstance(img_size, (tuple, list)):
        if len(img_size) == 1:
            return (img_size[0], img_size[0])
        if len(img_size) == 2:
            return tuple(img_size)
        raise AssertionError(
            f'The size of image should have length 1 or 2, but got {len(img_size)}'
        )
    raise TypeError(f'img_size must be an int or a tuple of 1 or 2 ints, got {img_size!r}')


@MODELS.register_module()
class MAEViT(BaseModule):
    """MAE Vision Transformer encoder for segmentation, a drop-in for mmseg's ``MAE``.

    Same constructor arguments, parameter names and outputs as ``mmseg.models.MAE``, so its
    configs and state dicts (mmseg's released UPerNet-MAE checkpoints included) work as
    they are. What it does better:

    - runs at any input size: absolute position embedding and relative position bias
      tables follow the token grid (non-square too), resized once per grid while weights
      are fixed; at ``img_size`` nothing is resized;
    - fused attention with the bias as its mask, on the fastest path per device and dtype
      (:func:`~mae_seg.models.layers.sdpa.attention_with_bias`), the bias gathered once
      per layer for all heads;
    - ``with_cp`` activation checkpointing of the blocks;
    - pretrained weights loaded with ``weights_only=True``, positions resized from the
      checkpoint's grid, and one readable report of missing and unexpected keys.

    Args:
        img_size: training image size; sets the grid of the position parameters.
        patch_size: patch size.
        in_channels: input channels.
        embed_dims: token channels.
        num_layers: transformer blocks.
        num_heads: attention heads.
        mlp_ratio: FFN hidden channels over ``embed_dims``.
        out_indices: blocks whose output is returned (-1: the last).
        attn_drop_rate: dropout on attention weights.
        drop_path_rate: stochastic depth, growing linearly to this value over the blocks.
        norm_cfg: normalization layers.
        act_cfg: FFN activation.
        patch_norm: normalize the patch embedding.
        final_norm: normalize the last block's output (``ln1``).
        num_fcs: linear layers per FFN.
        norm_eval: keep normalization layers in eval mode while training.
        pretrained: deprecated shortcut for ``init_cfg=dict(type='Pretrained', ...)``.
        init_values: initial layer-scale values.
        with_cp: activation checkpointing of the blocks while training.
        position_fit: how position parameters trained on the ``img_size`` grid are fitted
            to another grid (whole-image inference, other test scales): ``'stretch'``
            (default, mmseg's way) resamples them bicubically over the new grid,
            ``'extend'`` keeps every learned relative offset and absolute position and
            repeats the outermost ones beyond them; ``dict(relative=..., absolute=...)``
            sets the two separately. The default is the measured one: no fit changed the
            whole-image mIoU of the quick start's model (README "Whole image or sliding
            windows"). Loading weights of another grid always stretches.
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH[, prefix='backbone.'])``.
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        patch_size: int = 16,
        in_channels: int = 3,
        embed_dims: int = 768,
        num_layers: int = 12,
        num_heads: int = 12,
        mlp_ratio: int = 4,
        out_indices: int | Sequence[int] = -1,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_cfg: dict = dict(type='LN'),  # noqa: B006  (mmseg's signature; never mutated)
        act_cfg: dict = dict(type='GELU'),  # noqa: B006
        patch_norm: bool = False,
        final_norm: bool = False,
        num_fcs: int = 2,
        norm_eval: bool = False,
        pretrained: str | None = None,
        init_values: float = 0.1,
        with_cp: bool = False,
        position_fit: str | dict = 'stretch',
        init_cfg: dict | list[dict] | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        assert not (init_cfg and pretrained), (
            'init_cfg and pretrained cannot be set at the same time'
        )
        if isinstance(pretrained, str):
            warnings.warn(
                'DeprecationWarning: pretrained is deprecated, please use "init_cfg" instead',
                stacklevel=2,
            )
            self.init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        elif pretrained is not None:
            raise TypeError('pretrained must be a str or None')

        self.img_size = _to_2tuple(img_size)
        self.patch_size = patch_size
        self.patch_shape = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        self.num_layers = num_layers
        self.embed_dims = embed_dims
        self.out_indices = self._normalize_out_indices(out_indices, num_layers)
        self.final_norm = final_norm
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.pretrained = pretrained
        relative_fit, self.absolute_fit = parse_position_fit(position_fit)

        self.patch_embed = PatchEmbed(
            in_channels=in_channels,
            embed_dims=embed_dims,
            conv_type='Conv2d',
            kernel_size=patch_size,
            stride=patch_size,
            padding=0,
            norm_cfg=norm_cfg if patch_norm else None,
            init_cfg=None,
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        num_patches = self.patch_shape[0] * self.patch_shape[1]
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dims))

        drop_path_rates = torch.linspace(0, drop_path_rate, num_layers).tolist()
        self.layers = ModuleList(
            MAETransformerBlock(
                embed_dims=embed_dims,
                num_heads=num_heads,
                feedforward_channels=mlp_ratio * embed_dims,
                grid=self.patch_shape,
                attn_drop_rate=attn_drop_rate,
                drop_path_rate=rate,
                num_fcs=num_fcs,
                act_cfg=act_cfg,
                norm_cfg=norm_cfg,
                init_values=init_values,
                position_fit=relative_fit,
            )
            for rate in drop_path_rates
        )
        if final_norm:
            self.norm1_name, norm1 = build_norm_layer(norm_cfg, embed_dims, postfix=1)
            self.add_module(self.norm1_name, norm1)
        self._grid_cache = GridCache()

    @staticmethod
    def _normalize_out_indices(out_indices, num_layers: int) -> list[int]:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        elif not isinstance(out_indices, (list, tuple)):
            raise TypeError('out_indices must be type of int, list or tuple')
        normalized = []
        for index in out_indices:
            if not -num_layers <= index < num_layers:
                raise ValueError(
                    f'out_indices {list(out_indices)} out of range for {num_layers} layers'
                )
            normalized.append(index % num_layers)
        return normalized

    @property
    def norm1(self) -> nn.Module:
        return getattr(self, self.norm1_name)

    # -- positions ---------------------------------------------------------------------

    def _rel_pos_index(self, grid: Grid, device: torch.device) -> torch.Tensor:
        """Relative position index of ``grid``, built once per grid and device."""
        return self._grid_cache.get(
            ('rel_pos_index', grid, device), lambda: relative_position_index(grid).to(device)
        )

    def _pos_embed(self, grid: Grid) -> torch.Tensor:
        """Absolute position embedding for ``grid``; fitted and cached when weights are fixed."""
        pos_embed, fit = self.pos_embed, self.absolute_fit
        if grid == self.patch_shape:
            return pos_embed
        if torch.is_grad_enabled() and pos_embed.requires_grad:
            return fit_abs_pos_embed(pos_embed, self.patch_shape, grid, fit)
        return self._grid_cache.get(
            ('pos_embed', grid, fit, *weights_key(pos_embed)),
            lambda: fit_abs_pos_embed(pos_embed.detach(), self.patch_shape, grid, fit),
        )

    # -- forward -----------------------------------------------------------------------

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """
        Args:
            inputs: images ``(B, C_in, H_img, W_img)``, any size.

        Returns:
            one ``(B, C, H_img // patch, W_img // patch)`` map per ``out_indices`` entry.
        """
        x, hw_shape = self.patch_embed(inputs)
        grid = (int(hw_shape[0]), int(hw_shape[1]))
        batch = x.shape[0]
        x = torch.cat([self.cls_token.expand(batch, -1, -1), x], dim=1)
        x = x + self._pos_embed(grid)
        rel_pos_index = self._rel_pos_index(grid, x.device)
        workspace = None if torch.is_grad_enabled() else AttentionWorkspace()

        outs = []
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if self.with_cp and self.training and x.requires_grad:
                x = checkpoint(layer, x, grid, rel_pos_index, use_reentrant=False)
            else:
                x = layer(x, grid, rel_pos_index, workspace)
            if i == last and self.final_norm:
                x = self.norm1(x)
            if i in self.out_indices:
                out = x[:, 1:].reshape(batch, grid[0], grid[1], -1)
                outs.append(out.permute(0, 3, 1, 2).contiguous())
        return tuple(outs)

    def train(self, mode: bool = True) -> MAEViT:
        super().train(mode)
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, nn.LayerNorm):
                    module.eval()
        return self

    # -- weights -----------------------------------------------------------------------

    def init_weights(self) -> None:
        """MAE's fine-tuning initialisation, then the pretrained weights if configured.

        Linear layers: truncated normal (std 0.02), zero bias, and the output projections
        of block ``i`` divided by ``sqrt(2 * (i + 1))``; relative position tables zero;
        layer scales ``init_values``.
        """
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        with torch.no_grad():
            for layer_id, layer in enumerate(self.layers, start=1):
                layer.attn.proj.weight.div_(math.sqrt(2.0 * layer_id))
                layer.ffn.layers[-2].weight.div_(math.sqrt(2.0 * layer_id))
        trunc_normal_(self.cls_token, std=0.02)
        trunc_normal_(self.pos_embed, std=0.02)

        init_cfg = self.init_cfg
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            self.load_pretrained(init_cfg['checkpoint'], prefix=init_cfg.get('prefix', ''))
        elif init_cfg is not None:
            super().init_weights()

    def load_pretrained(self, path: str, prefix: str = '') -> None:
        """Load encoder weights from ``path`` safely and log what did not match, once.

        Args:
            path: a checkpoint with MAEViT / mmseg ``MAE`` key names (see
                ``tools/model_converters/mae2mmseg.py`` for other layouts).
            prefix: take only keys under this prefix, e.g. ``'backbone.'`` for a segmentor.
        """
        state_dict = extract_state_dict(load_checkpoint_file(path), prefix=prefix)
        result = self.load_state_dict(state_dict, strict=False)
        message = f'{type(self).__name__}: loaded {len(state_dict)} tensors from {path}'
        if result.missing_keys:
            message += f'\n  missing ({len(result.missing_keys)}, left at their initial values): '
            message += summarize_keys(result.missing_keys)
        if result.unexpected_keys:
            message += f'\n  unexpected ({len(result.unexpected_keys)}, ignored): '
            message += summarize_keys(result.unexpected_keys)
        print_log(message, logger='current')

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + 'pos_embed'
        pos_embed = state_dict.get(key)
        if pos_embed is not None and pos_embed.shape[1] != self.pos_embed.shape[1]:
            side = math.isqrt(pos_embed.shape[1] - 1)
            if side * side != pos_embed.shape[1] - 1:
                raise ValueError(
                    f'{key} has {pos_embed.shape[1] - 1} patch positions, which is not a square '
                    'grid; resize it to the model grid before loading'
                )
            state_dict[key] = resize_abs_pos_embed(pos_embed, (side, side), self.patch_shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
