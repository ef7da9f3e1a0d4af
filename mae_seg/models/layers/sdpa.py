"""Scaled dot-product attention with a learned additive bias, on the fastest path per device.

``F.scaled_dot_product_attention`` takes the bias as its float mask. On CUDA the
memory-efficient kernel handles a mask that needs a gradient, and without autograd the
CPU's flash kernel is the fastest in fp32 and bf16 alike. With a mask that needs a
gradient the CPU falls back to the unfused math kernel, slower than mmseg's hand-written
attention and keeping two ``(B, heads, N, N)`` tensors for backward. There:

- fp32 uses :func:`attention_with_bias_table`: the flash kernel forward with the bias
  gathered from its table, and a backward that recomputes bias and attention weights
  (from the saved log-sum-exp) one image at a time, so nothing of size ``N^2`` is kept
  between forward and backward, not even the bias (50 MB per ViT-B layer at 512x512);
- other dtypes (bf16 under autocast) use the plain formula, whose bf16 matrix products
  beat both the CPU's bf16 flash kernel and the recomputation's elementwise passes; it
  keeps one ``N^2`` tensor per layer for backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

__all__ = ['attention_with_bias', 'attention_with_bias_table', 'recomputes_bias']


def recomputes_bias(query: torch.Tensor, table: torch.Tensor, dropout_p: float) -> bool:
    """Whether :func:`attention_with_bias_table` is the path for this call: training in
    fp32 on the CPU, without attention dropout."""
    return (
        torch.is_grad_enabled()
        and table.requires_grad
        and query.device.type == 'cpu'
        and query.dtype == torch.float32
        and dropout_p == 0.0
    )


def attention_with_bias(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    bias: torch.Tensor,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """``softmax(query @ key^T / sqrt(D) + bias) @ value``.

    Args:
        query, key, value: ``(B, heads, N, D)``.
        bias: ``(1 or B, heads, N, N)``, same dtype as ``query``.
        dropout_p: dropout on the attention weights.

    Returns:
        ``(B, heads, N, D)``.
    """
    needs_bias_grad = torch.is_grad_enabled() and bias.requires_grad
    if needs_bias_grad and query.device.type == 'cpu' and dropout_p == 0.0:
        scores = (query * query.shape[-1] ** -0.5) @ key.transpose(-2, -1) + bias
        return scores.softmax(-1) @ value
    return F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=dropout_p)


def attention_with_bias_table(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    table: torch.Tensor,
    index: torch.Tensor,
) -> torch.Tensor:
    """``softmax(query @ key^T / sqrt(D) + bias) @ value`` with
    ``bias[h, i, j] = table[h, index[i, j]]``, shared by the images: the CPU fp32 training
    path (see :func:`recomputes_bias`).

    Args:
        query, key, value: ``(B, heads, N, D)``, fp32, on the CPU.
        table: ``(heads, T)``, head-major.
        index: ``(N, N)`` integer entries in ``[0, T)``.

    Returns:
        ``(B, heads, N, D)``.
    """
    return _CPUAttentionWithBiasTable.apply(query, key, value, table, index)


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
