"""Multi-head self-attention with a per-head relative position bias, through fused SDPA."""

from __future__ import annotations

import torch
from torch import nn

from .cache import GridCache, weights_key
from .positions import (
    Grid,
    fit_rel_pos_bias_table,
    rel_pos_grid_from_table_size,
    rel_pos_table_size,
    resize_rel_pos_bias_table,
)
from .sdpa import attention_with_bias, attention_with_bias_table, recomputes_bias

__all__ = ['AttentionWorkspace', 'RelPosAttention']


class AttentionWorkspace:
    """Scratch tensors shared by the attention layers of one forward pass without autograd.

    The gathered bias of ViT-B at 512x512 is 50 MB per layer. On the CPU a fresh tensor
    that large is mapped from the OS and page-faulted in on every layer, which takes longer
    than the gather itself; without autograd nothing keeps a layer's bias after the layer,
    so one tensor serves all of them.
    """

    def __init__(self) -> None:
        self._tensors: dict[str, torch.Tensor] = {}

    def get(
        self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        """An uninitialised tensor of this shape, the same one on every call with the same
        name and layout."""
        tensor = self._tensors.get(name)
        if tensor is None or (tensor.shape, tensor.dtype, tensor.device) != (
            torch.Size(shape),
            dtype,
            device,
        ):
            tensor = torch.empty(shape, dtype=dtype, device=device)
            self._tensors[name] = tensor
        return tensor


class RelPosAttention(nn.Module):
    """Self-attention whose logits get a learned bias for each relative offset and head.

    Parameter names and shapes are those of mmseg's ``BEiTAttention`` with ``bias=True``
    (``qkv``, ``proj``, ``relative_position_bias_table``), so mmseg weights load. Unlike
    mmseg, the bias is the additive mask of a fused attention kernel (see
    :func:`~mae_seg.models.layers.sdpa.attention_with_bias`; no attention matrix is kept for
    backward), and the table is resized to whatever token grid the input has.

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
        self._resized_tables = GridCache()

    def bias_table(self, grid: Grid) -> torch.Tensor:
        """The bias table fitted to ``grid``; cached while it cannot change.

        Without autograd the resized table depends only on the parameter's value, which
        ``_version`` tracks (optimizer steps and ``load_state_dict`` bump it), so it is
        computed once per grid. With autograd it is recomputed so gradients reach the table.
        """
        table = self.relative_position_bias_table
        if tuple(grid) == self.grid:
            return table
        fit = self.position_fit
        if torch.is_grad_enabled() and table.requires_grad:
            return fit_rel_pos_bias_table(table, self.grid, grid, fit)
        return self._resized_tables.get(
            (tuple(grid), fit, *weights_key(table)),
            lambda: fit_rel_pos_bias_table(table.detach(), self.grid, grid, fit),
        )

    def forward(
        self,
        x: torch.Tensor,
        grid: Grid,
        rel_pos_index: torch.Tensor,
        workspace: AttentionWorkspace | None = None,
    ) -> torch.Tensor:
        """
        Args:
            x: tokens ``(B, 1 + H*W, C)``, cls token first.
            grid: token grid ``(H, W)`` of ``x``.
            rel_pos_index: ``relative_position_index(grid)``, ``(1 + H*W, 1 + H*W)``.
            workspace: scratch shared across layers; only without autograd.

        Returns:
            ``(B, 1 + H*W, C)``.
        """
        batch, num_tokens, channels = x.shape
        qkv = self.qkv(x).reshape(batch, num_tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)
        dropout_p = self.attn_drop_rate if self.training else 0.0
        table = self._head_major_table(grid)
        if recomputes_bias(query, table, dropout_p):
            x = attention_with_bias_table(query, key, value, table, rel_pos_index)
        else:
            bias = self._gather_bias(table, rel_pos_index, query.dtype, workspace)
            x = attention_with_bias(query, key, value, bias, dropout_p)
        x = x.transpose(1, 2).reshape(batch, num_tokens, channels)
        return self.proj(x)

    def relative_position_bias(
        self,
        grid: Grid,
        rel_pos_index: torch.Tensor,
        dtype: torch.dtype,
        workspace: AttentionWorkspace | None = None,
    ) -> torch.Tensor:
        """The bias of every (query, key) pair, gathered for all heads at once.

        Args:
            grid: token grid ``(H, W)``.
            rel_pos_index: ``relative_position_index(grid)``, ``(N, N)``.
            dtype: dtype of the result.
            workspace: where to gather without allocating (no autograd).

        Returns:
            ``(1, num_heads, N, N)``, contiguous: the 4-D mask layout that lets SDPA use
            its fused kernels (a 3-D mask sends the CPU to the unfused math kernel).
        """
        return self._gather_bias(self._head_major_table(grid), rel_pos_index, dtype, workspace)

    def _head_major_table(self, grid: Grid) -> torch.Tensor:
        """``(num_heads, T)``: index_select along the rows of a head-major table is several
        times faster than advanced indexing of the transposed table, forward and backward."""
        return self.bias_table(grid).t().contiguous()

    def _gather_bias(
        self,
        table: torch.Tensor,
        rel_pos_index: torch.Tensor,
        dtype: torch.dtype,
        workspace: AttentionWorkspace | None,
    ) -> torch.Tensor:
        # The gather runs in the table's dtype because the CPU's bf16 index_select is slower
        # than fp32's followed by a cast.
        index = rel_pos_index.view(-1)
        shape = (1, self.num_heads, *rel_pos_index.shape)
        if workspace is None:
            return table.index_select(1, index).view(shape).to(dtype)
        gathered = workspace.get('bias', shape, table.dtype, table.device)
        torch.index_select(table, 1, index, out=gathered.view(self.num_heads, -1))
        if dtype == table.dtype:
            return gathered
        return workspace.get('bias_cast', shape, dtype, table.device).copy_(gathered)

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
