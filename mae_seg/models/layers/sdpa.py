"""Scaled dot-product attention with a learned additive bias, on the fastest path per device.

``F.scaled_dot_product_attention`` takes the bias as its float mask. On CUDA the
memory-efficient kernel handles a mask that needs a gradient, and without autograd the
CPU's flash kernel is the fastest in fp32 and bf16 alike. With a mask that needs a
gradient the CPU falls back to the unfused math kernel, slower than mmseg's hand-written
attention and keeping two ``(B, heads, N, N)`` tensors for backward. There:

- fp32 uses :class:`_CPUAttentionWithBias`: the flash kernel forward, and a backward that
  recomputes the attention weights from the saved log-sum-exp, so nothing of size ``N^2``
  is kept between forward and backward;
- other dtypes (bf16 under autocast) use the plain formula, whose bf16 matrix products
  beat both the CPU's bf16 flash kernel and the recomputation's elementwise passes; it
  keeps one ``N^2`` tensor per layer for backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

__all__ = ['attention_with_bias']


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
        if query.dtype == torch.float32:
            return _CPUAttentionWithBias.apply(query, key, value, bias)
        scores = (query * query.shape[-1] ** -0.5) @ key.transpose(-2, -1) + bias
        return scores.softmax(-1) @ value
    return F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=dropout_p)


class _CPUAttentionWithBias(torch.autograd.Function):
    """CPU flash-attention forward; backward recomputes the weights one image at a time."""

    @staticmethod
    def forward(ctx, query, key, value, bias):
        scale = query.shape[-1] ** -0.5
        out, logsumexp = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            query, key, value, 0.0, False, attn_mask=bias, scale=scale
        )
        ctx.save_for_backward(query, key, value, bias, out, logsumexp)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        query, key, value, bias, out, logsumexp = ctx.saved_tensors
        scale = query.shape[-1] ** -0.5
        grad_out = grad_out.contiguous()
        # delta_i = sum_j P_ij dP_ij = <dO_i, O_i>, the row term of the softmax backward.
        delta = (grad_out * out).sum(-1, keepdim=True)
        grad_query, grad_key, grad_value = (torch.empty_like(t) for t in (query, key, value))
        grad_bias = torch.empty_like(bias)
        # Two (heads, N, N) buffers serve every image: fresh ones would each be page-faulted in.
        weights = torch.empty_like(bias[0])
        scratch = None
        for i in range(query.shape[0]):
            shared = bias.shape[0] == 1
            b = 0 if shared else i
            q, k, v, g = query[i], key[i], value[i], grad_out[i]
            # P = exp(scale * q k^T + bias - logsumexp): the forward's attention weights.
            torch.baddbmm(bias[b], q, k.transpose(-2, -1), alpha=scale, out=weights)
            weights.sub_(logsumexp[i].unsqueeze(-1)).exp_()
            torch.bmm(weights.transpose(-2, -1), g, out=grad_value[i])
            # dS = P * (dP - delta), the gradient of the logits and so of the bias.
            accumulate = shared and i > 0
            if accumulate and scratch is None:
                scratch = torch.empty_like(weights)
            grad_scores = scratch if accumulate else grad_bias[b]
            torch.bmm(g, v.transpose(-2, -1), out=grad_scores)
            grad_scores.sub_(delta[i]).mul_(weights)
            torch.bmm(grad_scores, k, out=grad_query[i]).mul_(scale)
            torch.bmm(grad_scores.transpose(-2, -1), q, out=grad_key[i]).mul_(scale)
            if accumulate:
                grad_bias[0].add_(grad_scores)
        return grad_query, grad_key, grad_value, grad_bias
