"""Attention with a relative position bias read from its table inside a FlexAttention kernel.

``F.scaled_dot_product_attention`` needs the bias as a ``(heads, N, N)`` tensor, gathered from
the ``(heads, T)`` table before every layer (50 MB per ViT-B layer at 512x512 in fp32, kept
for backward when the table learns). FlexAttention (torch >= 2.6) takes a ``score_mod`` that
adds ``table[h, index[q, k]]`` to each score as the kernel computes it, and differentiates
through it into the table: no ``N x N`` bias exists, in forward or backward. It must be
compiled to be fused; uncompiled it runs a slow reference loop.
"""

from __future__ import annotations

import functools

import torch

__all__ = ['flex_attention_available', 'flex_attention_with_bias_table']


@functools.lru_cache(maxsize=1)
def flex_attention_available() -> bool:
    """Whether this torch has FlexAttention (``torch.nn.attention.flex_attention``)."""
    try:
        from torch.nn.attention.flex_attention import flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def _compiled_flex_attention():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def flex_attention_with_bias_table(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    table: torch.Tensor,
    index: torch.Tensor,
) -> torch.Tensor:
    """``softmax(query @ key^T / sqrt(D) + bias) @ value`` with
    ``bias[h, i, j] = table[h, index[i, j]]``, the bias never materialised.

    Args:
        query, key, value: ``(B, heads, N, D)``.
        table: ``(heads, T)``, head-major, same dtype as ``query`` (its gradient flows).
        index: ``(N, N)`` integer entries in ``[0, T)``.

    Returns:
        ``(B, heads, N, D)``.
    """

    def add_relative_position_bias(score, batch, head, q_idx, kv_idx):
        return score + table[head, index[q_idx, kv_idx]]

    return _compiled_flex_attention()(query, key, value, score_mod=add_relative_position_bias)
