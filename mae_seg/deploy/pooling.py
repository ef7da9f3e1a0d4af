"""Adaptive average pooling that stays correct in a graph exported for every input size.

ONNX has no adaptive pooling; torch's exporter decomposes ``nn.AdaptiveAvgPool2d`` into
gathers whose windows are fixed at the example's size, so the file fails or is wrong at
any other size (UPerNet's pyramid pooling module uses it). Written as two products with
pooling matrices built from the input's size, the same bins come out at every size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ['ExportableAdaptiveAvgPool2d', 'adaptive_avg_pool_matrix', 'exportable_pooling']


def adaptive_avg_pool_matrix(
    size_in: int, size_out: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``(size_out, size_in)`` weights of adaptive average pooling along one axis.

    Bin ``i`` covers ``[floor(i * n / s), ceil((i + 1) * n / s))``, as in ATen's
    ``adaptive_avg_pool2d``; its row holds ``1 / width`` there and 0 elsewhere.
    ``size_in`` may be symbolic (``torch.export``): the bins are tensor arithmetic on it.
    """
    bins = torch.arange(size_out, device=device)
    start = torch.div(bins * size_in, size_out, rounding_mode='floor')
    end = torch.div((bins + 1) * size_in + size_out - 1, size_out, rounding_mode='floor')
    positions = torch.arange(size_in, device=device)
    inside = (positions[None, :] >= start[:, None]) & (positions[None, :] < end[:, None])
    return inside.to(dtype) / (end - start)[:, None].to(dtype)


class ExportableAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d(output_size)`` as ``P_h @ x @ P_w^T``.

    Args:
        output_size: ``s`` or ``(s_h, s_w)``, fixed numbers (``None`` entries are not
            supported).
    """

    def __init__(self, output_size: int | tuple[int, int]) -> None:
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        if any(not isinstance(size, int) for size in output_size):
            raise ValueError(f'output_size must be ints, got {output_size!r}')
        self.output_size = tuple(output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> ``(N, C, s_h, s_w)``."""
        rows = adaptive_avg_pool_matrix(x.shape[-2], self.output_size[0], x.dtype, x.device)
        cols = adaptive_avg_pool_matrix(x.shape[-1], self.output_size[1], x.dtype, x.device)
        return rows @ x @ cols.t()


@contextlib.contextmanager
def exportable_pooling(model: nn.Module) -> Iterator[int]:
    """Swap every ``nn.AdaptiveAvgPool2d`` in ``model`` for
    :class:`ExportableAdaptiveAvgPool2d` while the block runs, then put the originals back.

    Yields:
        the number of modules swapped.
    """
    swapped = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.AdaptiveAvgPool2d):
                swapped.append((parent, name, child))
    try:
        for parent, name, child in swapped:
            setattr(parent, name, ExportableAdaptiveAvgPool2d(child.output_size))
        yield len(swapped)
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)
