"""Attention with a relative position bias: one function picks the kernel path, one small
function per path.

Every path computes ``softmax(query @ key^T / sqrt(D) + bias) @ value`` with
``bias[h, i, j] = table[h, index[i, j]]``, shared by the images of the batch. They differ in
speed and in what they keep for backward; :func:`choose_attention_path` says which one runs
where, and why. A new path is one more function in :data:`ATTENTION_PATHS` and one more
rule in :func:`choose_attention_path`; ``'flex_table'`` (FlexAttention) is in the table but
has no rule yet: ``tools/analysis/attention_paths.py`` measures it against the others.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from .flex import flex_attention_with_bias_table

__all__ = [
    'ATTENTION_PATHS',
    'AttentionWorkspace',
    'attention_with_rel_pos_bias',
    'choose_attention_path',
    'cpu_flash_kernel_available',
    'gather_bias',
]

FUSED_SDPA = 'fused_sdpa'
CPU_FORMULA = 'cpu_formula'
CPU_TABLE_RECOMPUTE = 'cpu_table_recompute'
FLEX_TABLE = 'flex_table'


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


def choose_attention_path(
    device: torch.device, dtype: torch.dtype, needs_grad: bool, dropout_p: float
) -> str:
    """The name of the :data:`ATTENTION_PATHS` entry for these conditions.

    - Under ``torch.export`` (ONNX export, ``mae_seg.deploy``): ``'fused_sdpa'``, whatever
      else holds. Its dense gather and one SDPA call are what ONNX expresses (``Gather``,
      then ``MatMul``/``Softmax`` or ``Attention``) for every grid, so one exported graph
      serves every image size.
    - No gradient for the bias table (inference, a frozen table), any CUDA call, or
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
    """
    if torch.compiler.is_exporting():
        return FUSED_SDPA
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
    CPU_FORMULA: cpu_formula,
    CPU_TABLE_RECOMPUTE: cpu_table_recompute,
    FLEX_TABLE: flex_table,
}


def attention_with_rel_pos_bias(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    table: torch.Tensor,
    index: torch.Tensor,
    dropout_p: float = 0.0,
    workspace: AttentionWorkspace | None = None,
) -> torch.Tensor:
    """``softmax(query @ key^T / sqrt(D) + bias) @ value`` with
    ``bias[h, i, j] = table[h, index[i, j]]``, on the path :func:`choose_attention_path`
    picks.

    Args:
        query, key, value: ``(B, heads, N, D)``.
        table: ``(heads, T)``, head-major.
        index: ``(N, N)`` integer entries in ``[0, T)``.
        dropout_p: dropout on the attention weights.
        workspace: scratch shared across layers; only without autograd.

    Returns:
        ``(B, heads, N, D)``.
    """
    needs_grad = torch.is_grad_enabled() and table.requires_grad
    path = choose_attention_path(query.device, query.dtype, needs_grad, dropout_p)
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
