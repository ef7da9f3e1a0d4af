"""Multi-head self-attention with a per-head relative position bias, through fused SDPA."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .cache import GridCache, weights_key
from .positions import (
    Grid,
    rel_pos_grid_from_table_size,
    rel_pos_table_size,
    resize_rel_pos_bias_table,
)

__all__ = ['RelPosAttention']


class RelPosAttention(nn.Module):
    """Self-attention whose logits get a learned bias for each relative offset and head.

    Parameter names and shapes are those of mmseg's ``BEiTAttention`` with ``bias=True``
    (``qkv``, ``proj``, ``relative_position_bias_table``), so mmseg weights load. Unlike
    mmseg, the bias is passed as the additive mask of
    :func:`torch.nn.functional.scaled_dot_product_attention` (no attention matrix kept in
    Python for backward), and the table is resized to whatever token grid the input has.

    Args:
        embed_dims: channels ``C``.
        num_heads: attention heads.
        grid: token grid ``(H, W)`` the bias table is made for.
        qkv_bias: learn a bias for q, k and v.
        attn_drop_rate: dropout on the attention weights while training.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        grid: Grid,
        qkv_bias: bool = True,
        attn_drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.grid = tuple(grid)
        self.attn_drop_rate = attn_drop_rate
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        # Zero-initialised, as in MAE's fine-tuning recipe.
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros(rel_pos_table_size(self.grid), num_heads)
        )
        self._resized_tables = GridCache()

    def bias_table(self, grid: Grid) -> torch.Tensor:
        """The bias table resized to ``grid``; cached while it cannot change.

        Without autograd the resized table depends only on the parameter's value, which
        ``_version`` tracks (optimizer steps and ``load_state_dict`` bump it), so it is
        computed once per grid. With autograd it is recomputed so gradients reach the table.
        """
        table = self.relative_position_bias_table
        if tuple(grid) == self.grid:
            return table
        if torch.is_grad_enabled() and table.requires_grad:
            return resize_rel_pos_bias_table(table, self.grid, grid)
        return self._resized_tables.get(
            (tuple(grid), *weights_key(table)),
            lambda: resize_rel_pos_bias_table(table.detach(), self.grid, grid),
        )

    def forward(self, x: torch.Tensor, grid: Grid, rel_pos_index: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: tokens ``(B, 1 + H*W, C)``, cls token first.
            grid: token grid ``(H, W)`` of ``x``.
            rel_pos_index: ``relative_position_index(grid)``, ``(1 + H*W, 1 + H*W)``.

        Returns:
            ``(B, 1 + H*W, C)``.
        """
        batch, num_tokens, channels = x.shape
        qkv = self.qkv(x).reshape(batch, num_tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)
        # (num_heads, N, N) gathered in one go, already in head-major order.
        bias = self.bias_table(grid).t()[:, rel_pos_index]
        x = F.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=bias.to(query.dtype),
            dropout_p=self.attn_drop_rate if self.training else 0.0,
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
