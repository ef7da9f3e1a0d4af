"""MAEViT: the MAE ViT encoder with relative position bias, for dense prediction at any size."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

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

from ...io import extract_state_dict, load_checkpoint_file, summarize_keys
from ...io.fit import check_state_dict_fits
from ..layers.attention import RelPosAttention
from ..layers.cache import GridCache, persistent_tensors
from ..layers.positions import (
    Grid,
    fit_abs_pos_embed,
    parse_position_fit,
    rel_pos_grid_from_table_size,
    rel_pos_table_size,
    relative_position_index,
    resize_abs_pos_embed,
    resize_rel_pos_bias_table,
)
from ..layers.rel_pos_index import RelPosIndex
from ..layers.sdpa import AttentionWorkspace

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

    @property
    def ffn_output(self) -> nn.Linear:
        """The FFN's last linear layer (mmcv's ``FFN`` keeps it in an unnamed ``Sequential``)."""
        return [m for m in self.ffn.layers.modules() if isinstance(m, nn.Linear)][-1]

    def forward(
        self,
        x: torch.Tensor,
        bias_table: torch.Tensor,
        rel_pos_index: torch.Tensor | RelPosIndex,
        workspace: AttentionWorkspace | None = None,
    ) -> torch.Tensor:
        """``(B, 1 + H*W, C)`` -> ``(B, 1 + H*W, C)``.

        ``bias_table`` and ``rel_pos_index`` as :meth:`RelPosAttention.forward` takes them;
        ``workspace`` only without autograd.
        """
        x = self._residual(
            x, self.gamma_1, self.attn(self.norm1(x), bias_table, rel_pos_index, workspace)
        )
        return self._residual(x, self.gamma_2, self.ffn(self.norm2(x)))

    def _residual(self, x: torch.Tensor, gamma: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        """``x + drop_path(gamma * branch)``, in one pass where no path is dropped."""
        if self.training and isinstance(self.drop_path, DropPath):
            return x + self.drop_path(gamma * branch)
        return torch.addcmul(x, gamma, branch)


def _to_2tuple(img_size: int | Sequence[int]) -> tuple[int, int]:
    """``img_size`` as mmseg's ``BEiT`` reads it: an int, or a sequence of 1 or 2 ints (else
    the same ``AssertionError``); mmengine's ``to_2tuple`` would pass a 3-sequence through."""
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


@dataclass
class GridPositions:
    """The position tensors the blocks use for one token grid ``(H, W)``.

    Args:
        pos_embed: absolute position embedding, ``(1, 1 + H*W, C)``.
        rel_pos_index: ``relative_position_index((H, W))``, ``(1 + H*W, 1 + H*W)``, or the
            :class:`RelPosIndex` that builds it only for the attention paths that read it
            whole.
        bias_tables: one head-major relative position bias table per block,
            ``(num_heads, T)``.
    """

    pos_embed: torch.Tensor
    rel_pos_index: torch.Tensor | RelPosIndex
    bias_tables: list[torch.Tensor]


@dataclass
class _CachedGrid:
    """What :class:`MAEViT` keeps for one grid and device: the index, and the resized
    positions with copies of the parameters they were resized from."""

    rel_pos_index: RelPosIndex
    positions: GridPositions | None = None
    source_weights: list[torch.Tensor] | None = None


def _same_tensors(first: list[torch.Tensor], second: list[torch.Tensor]) -> bool:
    return all(
        (a.shape, a.dtype, a.device) == (b.shape, b.dtype, b.device) and torch.equal(a, b)
        for a, b in zip(first, second)
    )


@MODELS.register_module()
class MAEViT(BaseModule):
    """MAE Vision Transformer encoder for segmentation, a drop-in for mmseg's ``MAE``.

    Same constructor arguments, parameter names and outputs as ``mmseg.models.MAE``, so its
    configs and state dicts (mmseg's released UPerNet-MAE checkpoints included) work as
    they are. What it does better:

    - runs at any input size: absolute position embedding and relative position bias
      tables follow the token grid (non-square too), resized once per grid while weights
      are fixed; at ``img_size`` nothing is resized;
    - fused attention with the bias as its mask, on the fastest path per device, dtype and
      task (:func:`~mae_seg.models.layers.sdpa.choose_attention_path`), the bias gathered
      once per layer for all heads; inference without autograd gathers it per block of
      queries and never holds an ``N x N`` bias or index, so whole-image inference on
      large images needs memory linear in the pixels;
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
        out_indices: blocks whose output is returned, in block order; an int ``-1`` is the
            last block. As in mmseg, a list entry outside ``0..num_layers-1`` (``12`` or
            ``-1`` for 12 blocks) selects nothing; MAEViT warns about it once.
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
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH[, prefix='backbone.'])``.
        with_cp: activation checkpointing of the blocks while training.
        output_cls_token: each output is ``[map, cls_token (B, C)]``, as mmseg's
            ``VisionTransformer`` gives it (its ``MAE`` has no such option).
        position_fit: how position parameters trained on the ``img_size`` grid are fitted
            to another grid (whole-image inference, other test scales): ``'stretch'``
            (default, mmseg's way) resamples them bicubically over the new grid,
            ``'extend'`` keeps every learned relative offset and absolute position and
            repeats the outermost ones beyond them; ``dict(relative=..., absolute=...)``
            sets the two separately. The default is the measured one: no fit changed the
            whole-image mIoU of the quick start's model (README "Whole image or sliding
            windows"). Loading weights of another grid always stretches.
    """

    # What a checkpoint may hold differently, for the one rule of mae_seg.io.fit:
    # position tensors of another grid are fitted on load, mmseg's index buffer is derived,
    # and MAE pretraining has no layer scales or relative position tables (BEiT's
    # fine-tuning recipe starts them at init_values and zero).
    LOAD_RESIZES = ('pos_embed', 'layers.*.attn.relative_position_bias_table')
    LOAD_IGNORES = ('layers.*.attn.relative_position_index',)
    PRETRAINING_LACKS = (
        'layers.*.gamma_1',
        'layers.*.gamma_2',
        'layers.*.attn.relative_position_bias_table',
    )

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
        init_cfg: dict | list[dict] | None = None,
        with_cp: bool = False,
        output_cls_token: bool = False,
        position_fit: str | dict = 'stretch',
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
        self.output_cls_token = output_cls_token
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

        # On the CPU even when built on the meta device (train.py --check): plain numbers.
        drop_path_rates = torch.linspace(0, drop_path_rate, num_layers, device='cpu').tolist()
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
        # The one cache of the model: per (grid, device), see _grid_positions.
        self._grid_cache = GridCache()

    @staticmethod
    def _normalize_out_indices(out_indices, num_layers: int) -> list[int]:
        """mmseg's reading of ``out_indices``, with a warning where it selects nothing.

        An int becomes a one-element list (``-1``: the last block); a list or tuple is kept
        as given and block ``i`` is returned when ``i in out_indices``, so an entry outside
        ``0..num_layers-1`` never matches. mmseg's own tests build ``MAE(out_indices=[2, 4,
        8, 12])`` and get three maps; configs rely on that, so it is kept, but said aloud.
        """
        if isinstance(out_indices, int):
            out_indices = [num_layers - 1 if out_indices == -1 else out_indices]
        elif isinstance(out_indices, (list, tuple)):
            out_indices = list(out_indices)
        else:
            raise TypeError('out_indices must be type of int, list or tuple')
        unmatched = [index for index in out_indices if index not in range(num_layers)]
        if unmatched:
            selected = sum(i in out_indices for i in range(num_layers))
            warnings.warn(
                f'MAEViT: out_indices {unmatched} select no block of 0..{num_layers - 1} and '
                f'are ignored, as in mmseg; {selected} maps are returned (-1 means the last '
                'block only as a plain int)',
                UserWarning,
                stacklevel=3,
            )
        return out_indices

    @property
    def norm1(self) -> nn.Module:
        return getattr(self, self.norm1_name)

    # -- positions ---------------------------------------------------------------------

    def _grid_positions(self, grid: Grid, device: torch.device) -> GridPositions:
        """The position tensors for ``grid``, cached per grid and device where that is safe.

        The index depends on the grid alone and is always cached, as a :class:`RelPosIndex`
        that builds the ``(N, N)`` tensor only if a path reads it whole (inference reads
        rows). The position parameters resized to ``grid`` are cached without autograd,
        and reused while the parameters equal the copies they were resized from: an
        optimizer step, ``load_state_dict``, ``model.to(dtype)`` or any in-place edit makes
        them differ (comparing costs well under a millisecond at ViT-L size, resizing
        several). With autograd they are recomputed, so that gradients reach the
        parameters; at the model's own grid nothing is resized. What is cached is built
        outside inference mode, so a model used under ``torch.inference_mode()`` trains
        afterwards.
        """
        if torch.compiler.is_compiling():
            # A compiled graph holds its own constants; looking up and comparing Python-side
            # cache entries would break the graph at every layer. Also under torch.export
            # (ONNX), where the grid is symbolic and every position is computed in the graph.
            return self._resize_positions(grid, relative_position_index(grid).to(device))
        entry = self._grid_cache.get((grid, device), lambda: _CachedGrid(RelPosIndex(grid, device)))
        if torch.is_grad_enabled() or grid == self.patch_shape:
            return self._resize_positions(grid, entry.rel_pos_index)
        weights = [self.pos_embed] + [
            layer.attn.relative_position_bias_table for layer in self.layers
        ]
        if entry.positions is None or not _same_tensors(entry.source_weights, weights):
            with persistent_tensors():
                entry.positions = self._resize_positions(grid, entry.rel_pos_index)
                entry.source_weights = [weight.detach().clone() for weight in weights]
        return entry.positions

    def _resize_positions(
        self, grid: Grid, rel_pos_index: torch.Tensor | RelPosIndex
    ) -> GridPositions:
        return GridPositions(
            pos_embed=fit_abs_pos_embed(self.pos_embed, self.patch_shape, grid, self.absolute_fit),
            rel_pos_index=rel_pos_index,
            bias_tables=[layer.attn.bias_table(grid) for layer in self.layers],
        )

    # -- forward -----------------------------------------------------------------------

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """
        Args:
            inputs: images ``(B, C_in, H_img, W_img)``, any size.

        Returns:
            one ``(B, C, H_img // patch, W_img // patch)`` map per selected block, in block
            order; with ``output_cls_token`` each is ``[map, cls_token (B, C)]``.
        """
        x, hw_shape = self.patch_embed(inputs)
        # Under torch.export (ONNX) the sizes stay symbolic: int() would fix the graph to one.
        grid = tuple(hw_shape) if torch.compiler.is_exporting() else tuple(map(int, hw_shape))
        batch = x.shape[0]
        x = torch.cat([self.cls_token.expand(batch, -1, -1), x], dim=1)
        positions = self._grid_positions(grid, x.device)
        x = x + positions.pos_embed
        index = positions.rel_pos_index
        # An exported graph allocates per call; a workspace would only add copies to it.
        exporting = torch.compiler.is_exporting()
        workspace = None if torch.is_grad_enabled() or exporting else AttentionWorkspace()

        outs = []
        last = len(self.layers) - 1
        for i, (layer, table) in enumerate(zip(self.layers, positions.bias_tables)):
            if self.with_cp and self.training and x.requires_grad:
                x = checkpoint(layer, x, table, index, use_reentrant=False)
            else:
                x = layer(x, table, index, workspace)
            if i == last and self.final_norm:
                x = self.norm1(x)
            if i in self.out_indices:
                out = x[:, 1:].reshape(batch, grid[0], grid[1], -1)
                out = out.permute(0, 3, 1, 2).contiguous()
                outs.append([out, x[:, 0]] if self.output_cls_token else out)
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
                layer.ffn_output.weight.div_(math.sqrt(2.0 * layer_id))
        trunc_normal_(self.cls_token, std=0.02)
        trunc_normal_(self.pos_embed, std=0.02)

        init_cfg = self.init_cfg
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            self.load_pretrained(init_cfg['checkpoint'], prefix=init_cfg.get('prefix', ''))
        elif init_cfg is not None:
            super().init_weights()

    def load_pretrained(self, path: str, prefix: str = '') -> None:
        """Load encoder weights from ``path`` safely; refuse them unless they fit.

        Args:
            path: a checkpoint with MAEViT / mmseg ``MAE`` key names (see
                ``tools/model_converters/mae2mmseg.py`` for other layouts).
            prefix: take only keys under this prefix, e.g. ``'backbone.'`` for a segmentor.

        Raises:
            CheckpointMismatchError: see :meth:`pretrained_state_dict`.
        """
        state_dict = self.pretrained_state_dict(path, prefix)
        result = self.load_state_dict(state_dict, strict=False)
        message = f'{type(self).__name__}: loaded {len(state_dict)} tensors from {path}'
        if result.missing_keys:
            message += (
                f'; not in the checkpoint, initialised for fine-tuning ({len(result.missing_keys)})'
                f': {summarize_keys(result.missing_keys)}'
            )
        if result.unexpected_keys:
            message += f'; ignored ({len(result.unexpected_keys)}): '
            message += summarize_keys(result.unexpected_keys, max_items=5)
        print_log(message, logger='current')

    def pretrained_state_dict(self, path: str, prefix: str = '') -> dict[str, torch.Tensor]:
        """The tensors :meth:`load_pretrained` would load, checked against this model.

        Works on a model built on the meta device (``train.py --check``): only shapes and
        names are compared. Position tensors are fitted to this model's grid first.

        Raises:
            CheckpointError: the file cannot be read or has no key under ``prefix``.
            CheckpointMismatchError: a tensor the encoder needs is missing (other than
                ``PRETRAINING_LACKS``) or has another shape.
        """
        state_dict = extract_state_dict(load_checkpoint_file(path), prefix=prefix)
        # mmseg's order: position parameters fitted to this model, then the load.
        state_dict = self.resize_abs_pos_embed(self.resize_rel_pos_embed(state_dict))
        where = f' under {prefix!r}' if prefix else ''
        check_state_dict_fits(
            state_dict,
            self.state_dict(),
            f'pretrained checkpoint {path}{where}',
            fix='convert it with tools/model_converters/mae2mmseg.py, or fix the model '
            'config (embed_dims, num_layers, patch_size, final_norm) to the checkpoint',
            may_be_missing=self.PRETRAINING_LACKS,
            may_be_unexpected=('*',),
        )
        return state_dict

    def resize_rel_pos_embed(self, checkpoint: dict) -> dict[str, torch.Tensor]:
        """mmseg's ``BEiT.resize_rel_pos_embed``: fit a checkpoint's bias tables to this model.

        Drops ``relative_position_index`` buffers and resizes every
        ``relative_position_bias_table`` to this model's grid, in place. Where mmseg
        interpolates along a geometric sequence with scipy's ``interp2d`` (removed in scipy
        1.14, so it raises there) and only for square grids, this resamples bicubically
        (:func:`~mae_seg.models.layers.positions.resize_rel_pos_bias_table`), for any grid.
        :meth:`load_pretrained` calls it; :meth:`load_state_dict` resizes the same way.

        Args:
            checkpoint: ``{'state_dict': {...}}`` or a state dict, with MAEViT names.

        Returns:
            the state dict, changed in place.
        """
        state_dict = checkpoint.get('state_dict', checkpoint)
        for key in list(state_dict):
            if key.endswith('relative_position_index'):
                del state_dict[key]
            elif key.endswith('relative_position_bias_table'):
                table = state_dict[key]
                rows = rel_pos_table_size(self.patch_shape)
                if table.shape[0] != rows:
                    src_grid = rel_pos_grid_from_table_size(table.shape[0])
                    state_dict[key] = resize_rel_pos_bias_table(table, src_grid, self.patch_shape)
        return state_dict

    def resize_abs_pos_embed(self, state_dict: dict) -> dict[str, torch.Tensor]:
        """mmseg's ``MAE.resize_abs_pos_embed``: fit a square ``pos_embed`` to this model's grid.

        Bicubic, class token kept, in place; unlike mmseg's, to a non-square grid too.
        :meth:`load_pretrained` calls it; :meth:`load_state_dict` resizes the same way.

        Args:
            state_dict: MAEViT names; ``pos_embed`` is ``(1, 1 + S*S, C)``.

        Returns:
            the state dict, changed in place.
        """
        pos_embed = state_dict.get('pos_embed')
        if pos_embed is not None:
            state_dict['pos_embed'] = self._pos_embed_for_model('pos_embed', pos_embed)
        return state_dict

    def _pos_embed_for_model(self, key: str, pos_embed: torch.Tensor) -> torch.Tensor:
        """A checkpoint's square-grid ``(1, 1 + S*S, C)`` embedding on this model's grid."""
        if pos_embed.shape[1] == self.pos_embed.shape[1]:
            return pos_embed
        side = math.isqrt(pos_embed.shape[1] - 1)
        if side * side != pos_embed.shape[1] - 1:
            raise ValueError(
                f'{key} has {pos_embed.shape[1] - 1} patch positions, which is not a square '
                'grid; resize it to the model grid before loading'
            )
        return resize_abs_pos_embed(pos_embed, (side, side), self.patch_shape)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + 'pos_embed'
        if key in state_dict:
            state_dict[key] = self._pos_embed_for_model(key, state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
