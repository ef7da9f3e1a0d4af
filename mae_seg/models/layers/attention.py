"""Multi-head self-attention with a per-head relative position bias."""

from __future__ import annotations

import torch
from torch import nn

from .positions import (
    Grid,
    fit_rel_pos_bias_table,
    rel_pos_grid_from_table_size,
    rel_pos_table_size,
    resize_rel_pos_bias_table,
)
from .rel_pos_index import RelPosIndex
from .sdpa import AttentionWorkspace, attention_with_rel_pos_bias

__all__ = ['RelPosAttention']


class RelPosAttention(nn.Module):
    """Self-attention whose logits get a learned bias for each relative offset and head.

    Parameter names and shapes are those of mmseg's ``BEiTAttention`` with ``bias=True``
    (``qkv``, ``proj``, ``relative_position_bias_table``), so mmseg weights load. Unlike
    mmseg, the bias is the additive mask of a fused attention kernel (see
    :func:`~mae_seg.models.layers.sdpa.choose_attention_path`), and the table is resized to
    whatever token grid the input has (by the caller, :class:`MAEViT`, which caches it).

    Args:
        embed_dims: channels ``C``.
        num_heads: attention heads.
        grid: token grid ``(H, W)`` the bias table is made for.
        qkv_bias: learn a bias for q, k and v.
        attn_drop_rate: dropout on the attention weights while training.
        position_fit: how the table is fitted to another grid, ``'stretch'`` or
            ``'extend'`` (see :mod:`~mae_seg.models.layers.positions`).
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        grid: Grid,
        qkv_bias: bool = True,
        attn_drop_rate: float = 0.0,
        position_fit: str = 'stretch',
    ) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.grid = tuple(grid)
        self.attn_drop_rate = attn_drop_rate
        self.position_fit = position_fit
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        # Zero-initialised, as in MAE's fine-tuning recipe.
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros(rel_pos_table_size(self.grid), num_heads)
        )

    def bias_table(self, grid: Grid) -> torch.Tensor:
        """The bias table fitted to ``grid`` (``position_fit``), head-major: ``(num_heads, T)``.

        Differentiable and not cached; at the table's own grid nothing is resized.
        """
        table = self.relative_position_bias_table
        fitted = fit_rel_pos_bias_table(table, self.grid, grid, self.position_fit)
        return fitted.t().contiguous()

    def forward(
        self,
        x: torch.Tensor,
        bias_table: torch.Tensor,
        rel_pos_index: torch.Tensor | RelPosIndex,
        workspace: AttentionWorkspace | None = None,
    ) -> torch.Tensor:
        """
        Args:
            x: tokens ``(B, 1 + H*W, C)``, cls token first.
            bias_table: ``self.bias_table((H, W))`` (or a cached copy), ``(num_heads, T)``.
            rel_pos_index: ``relative_position_index((H, W))``, ``(1 + H*W, 1 + H*W)``, or
                a :class:`RelPosIndex` of ``(H, W)``.
            workspace: scratch shared across layers; only without autograd.

        Returns:
            ``(B, 1 + H*W, C)``.
        """
        batch, num_tokens, channels = x.shape
        qkv = self.qkv(x).reshape(batch, num_tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)
        dropout_p = self.attn_drop_rate if self.training else 0.0
        x = attention_with_rel_pos_bias(
            query, key, value, bias_table, rel_pos_index, dropout_p, workspace
        )
        x = x.transpose(1, 2).reshape(batch, num_tokens, channels)
        return self.proj(x)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # mmseg keeps the index as a buffer; here it is derived from the grid.
        state_dict.pop(prefix + 'relative_position_index', None)
        key = prefix + 'relative_position_bias_table'
        table = state_dict.get(key)
        if table is not None and table.shape[0] != self.relative_position_bias_table.shape[0]:
            state_dict[key] = resize_rel_pos_bias_table(
                table, rel_pos_grid_from_table_size(table.shape[0]), self.grid
            )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
