"""Attention with a relative position bias: one function picks the kernel path, one small
function per path.

Every path computes ``softmax(query @ key^T / sqrt(D) + bias) @ value`` with
``bias[h, i, j] = table[h, index[i, j]]``, shared by the images of the batch. They differ in
speed, in the memory they need and in what they keep for backward;
:func:`choose_attention_path` says which one runs where, and why. A new path is one more
function in :data:`ATTENTION_PATHS` and one more rule in :func:`choose_attention_path`;
``'flex_table'`` (FlexAttention) is in the table but has no rule yet:
``tools/analysis/attention_paths.py`` measures it against the others.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Iterator
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from .flex import flex_attention_with_bias_table
from .positions import NUM_CLS_ENTRIES, rel_pos_bias_grid_view
from .rel_pos_index import RelPosIndex, dense_index

__all__ = [
    'ATTENTION_PATHS',
    'BLOCKWISE_MIN_TOKENS',
    'QUERY_BLOCK_ROWS',
    'AttentionWorkspace',
    'attention_with_rel_pos_bias',
    'choose_attention_path',
    'cpu_flash_kernel_available',
    'gather_bias',
    'use_attention_path',
]

FUSED_SDPA = 'fused_sdpa'
BLOCKWISE_SDPA = 'blockwise_sdpa'
CPU_FORMULA = 'cpu_formula'
CPU_TABLE_RECOMPUTE = 'cpu_table_recompute'
FLEX_TABLE = 'flex_table'

#: Most queries per block of ``'blockwise_sdpa'``, per device type: its bias block is
#: ``heads x rows x N``, linear in the tokens ``N`` (ViT-B at 8,192 tokens, fp32: 0.4 GB
#: where the whole bias is 3.2 GB). CPU: each block costs a few kernel calls more, so
#: blocks are as large as the memory goal allows. CUDA, not measured: 1,024 rows keep the
#: memory-efficient kernel's grid of 64-row query tiles ``16 x heads`` wide per image.
QUERY_BLOCK_ROWS = {'cpu': 1024, 'cuda': 1024}

#: Fewest tokens for which inference takes ``'blockwise_sdpa'``, per device type; below,
#: the whole bias is small (ViT-B at 2,048 tokens: 200 MB, one layer at a time) and
#: ``'fused_sdpa'``, two kernel calls a layer, is faster (see :func:`choose_attention_path`).
BLOCKWISE_MIN_TOKENS = {'cpu': 2048, 'cuda': 2048}

_FORCED_PATH: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    'mae_seg_forced_attention_path', default=None
)


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


@functools.cache
def cpu_flash_kernel_available() -> bool:
    """Whether torch's private CPU flash-attention op exists and behaves as expected.

    ``aten._scaled_dot_product_flash_attention_for_cpu`` returns the log-sum-exp that the
    recomputing backward needs and the public ``F.scaled_dot_product_attention`` does not;
    being private, it may be renamed or change its signature. Checked once per process, on
    a tiny input against the public function.
    """
    kernel = getattr(torch.ops.aten, '_scaled_dot_product_flash_attention_for_cpu', None)
    if kernel is None:
        return False
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(1, 1, 3, 2, generator=generator) for _ in range(3))
    mask = torch.randn(1, 1, 3, 3, generator=generator)
    try:
        out, logsumexp = kernel(query, key, value, 0.0, False, attn_mask=mask, scale=0.5)
    except (RuntimeError, TypeError, ValueError):
        return False
    expected = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=0.5)
    return logsumexp.shape == (1, 1, 3) and torch.allclose(out, expected, atol=1e-5)


@contextlib.contextmanager
def use_attention_path(name: str) -> Iterator[None]:
    """Run every attention call of this block on path ``name``, whatever the conditions
    (as torch's ``sdpa_kernel`` picks SDPA's backend): to compare paths in benchmarks and
    tests.

    Raises:
        ValueError: ``name`` is not in :data:`ATTENTION_PATHS`.
    """
    if name not in ATTENTION_PATHS:
        raise ValueError(f'attention path {name!r} is not one of {sorted(ATTENTION_PATHS)}')
    token = _FORCED_PATH.set(name)
    try:
        yield
    finally:
        _FORCED_PATH.reset(token)


def _tracing() -> bool:
    """Whether a graph is being traced (``torch.compile``, ``torch.export``, TorchScript or
    ONNX export): a Python loop over blocks would be unrolled for one input size."""
    return (
        torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
        or torch.jit.is_tracing()
        or torch.jit.is_scripting()
    )


def choose_attention_path(
    device: torch.device,
    dtype: torch.dtype,
    needs_grad: bool,
    dropout_p: float,
    grid: tuple[int, int] | None = None,
) -> str:
    """The name of the :data:`ATTENTION_PATHS` entry for these conditions.

    - Under ``torch.export`` (ONNX export, ``mae_seg.deploy``): ``'fused_sdpa'``, whatever
      else holds. Its dense gather and one SDPA call are what ONNX expresses (``Gather``,
      then ``MatMul``/``Softmax`` or ``Attention``) for every grid, so one exported graph
      serves every image size.
    - Inside :func:`use_attention_path`: the path it names.
    - Autograd off (inference), no attention dropout, eager, a known ``grid`` of at least
      :data:`BLOCKWISE_MIN_TOKENS` tokens, any dtype: ``'blockwise_sdpa'``, SDPA per
      block of queries with the bias of that block copied from a strided view of the
      table, so that no ``N x N`` bias or index exists (whole-image inference on large
      images needs memory linear in the pixels). Measured on a 2-core CPU, fp32
      (docs/performance.md): a ViT-B layer takes 1.24x the dense path's time at 1,025
      tokens (its extra kernel calls), 1.04x at 2,305, 1.00x at 4,097, and a whole ViT-B
      forward 0.79x at 8,193 tokens, in a quarter of the memory. Traced graphs
      (compile, export) take ``'fused_sdpa'``, which every exporter can express for any
      input size.
    - No gradient for the bias table (a frozen table), any CUDA call, or
      attention dropout: ``'fused_sdpa'``, ``F.scaled_dot_product_attention`` with the
      gathered bias as its float mask. On CUDA the memory-efficient kernel takes a mask
      that needs a gradient; without one the CPU's flash kernel is the fastest there is,
      in fp32 and bf16 alike. Dropout needs SDPA's own dropout.
    - CPU fp32 training: ``'cpu_table_recompute'``. SDPA would fall back to its unfused
      math kernel for a mask with a gradient, slower than the plain formula and keeping two
      ``(B, heads, N, N)`` tensors for backward; this path runs the flash kernel forward and
      a backward that recomputes bias and attention weights image by image, so nothing of
      size ``N^2`` is kept between forward and backward (50 MB a ViT-B layer at 512x512).
      It needs torch's private CPU flash op (:func:`cpu_flash_kernel_available`); without
      it, ``'fused_sdpa'``.
    - CPU training in other dtypes (bf16 under autocast): ``'cpu_formula'``, the plain
      formula, whose bf16 matrix products beat both the CPU's bf16 flash kernel and the
      recomputation's elementwise passes; it keeps one ``N^2`` tensor per layer. Also
      CPU training under ``torch.compile``, which fuses the formula and cannot trace the
      recomputing path's autograd function and private-kernel check without graph breaks.

    Args:
        device: device of the query.
        dtype: dtype of the query.
        needs_grad: autograd is on and the bias table requires a gradient.
        dropout_p: dropout on the attention weights.
        grid: token grid ``(H, W)`` when the bias index is that of
            :func:`~.positions.relative_position_index` (a :class:`RelPosIndex`), which
            ``'blockwise_sdpa'`` needs.
    """
    if torch.compiler.is_exporting():
        return FUSED_SDPA
    forced = _FORCED_PATH.get()
    if forced is not None:
        return forced
    if (
        grid is not None
        and 1 + grid[0] * grid[1] >= BLOCKWISE_MIN_TOKENS.get(device.type, 0)
        and not torch.is_grad_enabled()
        and dropout_p == 0.0
        and not _tracing()
    ):
        return BLOCKWISE_SDPA
    if not needs_grad or device.type != 'cpu' or dropout_p > 0.0:
        return FUSED_SDPA
    if dtype != torch.float32 or torch.compiler.is_compiling():
        return CPU_FORMULA
    return CPU_TABLE_RECOMPUTE if cpu_flash_kernel_available() else FUSED_SDPA


def gather_bias(
    table: torch.Tensor,
    index: torch.Tensor,
    dtype: torch.dtype,
    workspace: AttentionWorkspace | None = None,
) -> torch.Tensor:
    """The bias of every (query, key) pair, gathered for all heads at once.

    Args:
        table: ``(heads, T)``, head-major: ``index_select`` along its rows is several times
            faster than advanced indexing of a ``(T, heads)`` table, forward and backward.
        index: ``(N, N)`` integer entries in ``[0, T)``.
        dtype: dtype of the result.
        workspace: where to gather without allocating (no autograd).

    Returns:
        ``(1, heads, N, N)``, contiguous: the 4-D mask layout that lets SDPA use its fused
        kernels (a 3-D mask sends the CPU to the unfused math kernel).
    """
    # The gather runs in the table's dtype because the CPU's bf16 index_select is slower
    # than fp32's followed by a cast.
    heads = table.shape[0]
    shape = (1, heads, *index.shape)
    if workspace is None:
        return table.index_select(1, index.view(-1)).view(shape).to(dtype)
    gathered = workspace.get('bias', shape, table.dtype, table.device)
    torch.index_select(table, 1, index.view(-1), out=gathered.view(heads, -1))
    if dtype == table.dtype:
        return gathered
    return workspace.get('bias_cast', shape, dtype, table.device).copy_(gathered)


def fused_sdpa(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    table: Tensor,
    index: Tensor,
    dropout_p: float,
    workspace: AttentionWorkspace | None,
) -> Tensor:
    """``F.scaled_dot_product_attention`` with the gathered bias as its float mask."""
    bias = gather_bias(table, index, query.dtype, workspace)
    return F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=dropout_p)


def blockwise_sdpa(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    table: Tensor,
    index: RelPosIndex,
    dropout_p: float,
    workspace: AttentionWorkspace | None,
) -> Tensor:
    """``F.scaled_dot_product_attention`` block by block of queries, each block with the
    bias of its rows as its float mask, copied from a strided view of the table.

    The keys (and values) are put in reverse grid order, which makes the token-to-token
    bias a view of the table (:func:`~.positions.rel_pos_bias_grid_view`); attention sums
    over the keys, so their order does not change the result. Queries go in blocks of
    whole grid rows, at most :data:`QUERY_BLOCK_ROWS` queries, the cls token alone: memory
    ``heads x rows x N`` for the bias, reused from block to block and layer to layer
    without autograd, and no index at all. With autograd each block gets a fresh bias, so
    that its gradients are right. No dropout.

    Raises:
        TypeError: ``index`` is a tensor, not the :class:`RelPosIndex` of a grid.
    """
    if not isinstance(index, RelPosIndex):
        raise TypeError('blockwise_sdpa reads the bias by grid position: pass a RelPosIndex')
    if dropout_p > 0.0:
        raise ValueError('the blockwise_sdpa attention path has no attention dropout')
    height, width = index.grid
    heads, tokens = table.shape[0], index.num_tokens
    num_offsets = table.shape[1] - NUM_CLS_ENTRIES
    cls_to_token, token_to_cls, cls_to_cls = range(num_offsets, num_offsets + NUM_CLS_ENTRIES)
    key, value = (torch.cat([t[:, :, :1], t[:, :, 1:].flip(2)], dim=2) for t in (key, value))
    cls_bias = torch.cat(
        [table[:, cls_to_cls, None], table[:, cls_to_token, None].expand(heads, tokens - 1)], 1
    ).to(query.dtype)
    outputs = [
        F.scaled_dot_product_attention(
            query[:, :, :1], key, value, attn_mask=cls_bias.view(1, heads, 1, tokens)
        )
    ]
    grid_bias = rel_pos_bias_grid_view(table, index.grid)
    block = _grid_rows_per_block(height, width, query.device)
    reuse = workspace is not None and not torch.is_grad_enabled()
    for first in range(0, height, block):
        last = min(first + block, height)
        shape = (1, heads, (last - first) * width, tokens)
        if reuse:
            capacity = heads * block * width * tokens
            buffer = workspace.get('bias_rows', (capacity,), query.dtype, query.device)
            bias = buffer[: math.prod(shape)].view(shape)
        else:
            bias = query.new_empty(shape)
        bias[0, :, :, 0] = table[:, token_to_cls, None]
        bias[0, :, :, 1:].view(heads, last - first, width, height, width).copy_(
            grid_bias[:, first:last]
        )
        rows = query[:, :, 1 + first * width : 1 + last * width]
        outputs.append(F.scaled_dot_product_attention(rows, key, value, attn_mask=bias))
    return torch.cat(outputs, dim=2)


def _grid_rows_per_block(height: int, width: int, device: torch.device) -> int:
    """Grid rows per block of ``'blockwise_sdpa'``: at most :data:`QUERY_BLOCK_ROWS`
    queries (at least one grid row), the blocks as equal as whole rows allow."""
    most = max(1, QUERY_BLOCK_ROWS.get(device.type, QUERY_BLOCK_ROWS['cuda']) // width)
    return -(-height // -(-height // most))


def cpu_formula(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    table: Tensor,
    index: Tensor,
    dropout_p: float,
    workspace: AttentionWorkspace | None,
) -> Tensor:
    """The formula written out: fast bf16 matrix products on the CPU while training."""
    bias = gather_bias(table, index, query.dtype)
    scores = (query * query.shape[-1] ** -0.5) @ key.transpose(-2, -1) + bias
    return scores.softmax(-1) @ value


def flex_table(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    table: Tensor,
    index: Tensor,
    dropout_p: float,
    workspace: AttentionWorkspace | None,
) -> Tensor:
    """FlexAttention reading the bias from its table inside the kernel: no ``N^2`` bias
    in memory. CUDA for training (torch has no FlexAttention backward on the CPU); no
    dropout. Not chosen automatically until measured against ``'fused_sdpa'`` on a GPU
    (``tools/analysis/attention_paths.py``)."""
    if dropout_p > 0.0:
        raise ValueError('the flex_table attention path has no attention dropout')
    return flex_attention_with_bias_table(query, key, value, table, index)


def cpu_table_recompute(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    table: Tensor,
    index: Tensor,
    dropout_p: float,
    workspace: AttentionWorkspace | None,
) -> Tensor:
    """CPU flash-attention forward, backward recomputing bias and weights image by image."""
    return _CPUAttentionWithBiasTable.apply(query, key, value, table, index)


AttentionPath = Callable[..., torch.Tensor]

#: Every path, by the name :func:`choose_attention_path` gives. Each takes
#: ``(query, key, value, table, index, dropout_p, workspace)`` as
#: :func:`attention_with_rel_pos_bias` does.
ATTENTION_PATHS: dict[str, AttentionPath] = {
    FUSED_SDPA: fused_sdpa,
    BLOCKWISE_SDPA: blockwise_sdpa,
    CPU_FORMULA: cpu_formula,
    CPU_TABLE_RECOMPUTE: cpu_table_recompute,
    FLEX_TABLE: flex_table,
}


def attention_with_rel_pos_bias(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    table: torch.Tensor,
    index: torch.Tensor | RelPosIndex,
    dropout_p: float = 0.0,
    workspace: AttentionWorkspace | None = None,
) -> torch.Tensor:
    """``softmax(query @ key^T / sqrt(D) + bias) @ value`` with
    ``bias[h, i, j] = table[h, index[i, j]]``, on the path :func:`choose_attention_path`
    picks.

    Args:
        query, key, value: ``(B, heads, N, D)``.
        table: ``(heads, T)``, head-major.
        index: ``(N, N)`` integer entries in ``[0, T)``, or a :class:`RelPosIndex` that
            builds them only for the paths that read them all.
        dropout_p: dropout on the attention weights.
        workspace: scratch shared across layers; only without autograd.

    Returns:
        ``(B, heads, N, D)``.
    """
    needs_grad = torch.is_grad_enabled() and table.requires_grad
    grid = index.grid if isinstance(index, RelPosIndex) else None
    path = choose_attention_path(query.device, query.dtype, needs_grad, dropout_p, grid)
    if path != BLOCKWISE_SDPA:
        index = dense_index(index)
    return ATTENTION_PATHS[path](query, key, value, table, index, dropout_p, workspace)


class _CPUAttentionWithBiasTable(torch.autograd.Function):
    """CPU flash-attention forward; backward recomputes bias and weights image by image."""

    @staticmethod
    def forward(ctx, query, key, value, table, index):
        scale = query.shape[-1] ** -0.5
        bias = table.index_select(1, index.view(-1)).view(1, table.shape[0], *index.shape)
        out, logsumexp = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            query, key, value, 0.0, False, attn_mask=bias, scale=scale
        )
        ctx.save_for_backward(query, key, value, table, index, out, logsumexp)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        query, key, value, table, index, out, logsumexp = ctx.saved_tensors
        scale = query.shape[-1] ** -0.5
        flat_index = index.view(-1)
        grad_out = grad_out.contiguous()
        # delta_i = sum_j P_ij dP_ij = <dO_i, O_i>, the row term of the softmax backward.
        delta = (grad_out * out).sum(-1, keepdim=True)
        grad_query, grad_key, grad_value = (torch.empty_like(t) for t in (query, key, value))
        grad_table = torch.zeros_like(table)
        # Two (heads, N, N) buffers serve every image: fresh ones would each be page-faulted
        # in, and a kept bias would be a third.
        weights = query.new_empty(table.shape[0], *index.shape)
        grad_scores = torch.empty_like(weights)
        for i in range(query.shape[0]):
            q, k, v, g = query[i], key[i], value[i], grad_out[i]
            # P = exp(scale * q k^T + bias - logsumexp): the forward's attention weights.
            torch.index_select(table, 1, flat_index, out=weights.view(table.shape[0], -1))
            weights.baddbmm_(q, k.transpose(-2, -1), alpha=scale)
            weights.sub_(logsumexp[i].unsqueeze(-1)).exp_()
            torch.bmm(weights.transpose(-2, -1), g, out=grad_value[i])
            # dS = P * (dP - delta), the gradient of the logits and so of the bias.
            torch.bmm(g, v.transpose(-2, -1), out=grad_scores)
            grad_scores.sub_(delta[i]).mul_(weights)
            torch.bmm(grad_scores, k, out=grad_query[i]).mul_(scale)
            torch.bmm(grad_scores.transpose(-2, -1), q, out=grad_key[i]).mul_(scale)
            grad_table.index_add_(1, flat_index, grad_scores.view(table.shape[0], -1))
        return grad_query, grad_key, grad_value, grad_table, None
