"""Does the exported file compute what the PyTorch model computes? onnxruntime against
PyTorch on the same random images, at sizes the export saw and sizes it never saw."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .runtime import OnnxSegmentor

__all__ = ['SizeCheck', 'unseen_sizes', 'verify_onnx']


@dataclass(frozen=True)
class SizeCheck:
    """onnxruntime against PyTorch at one input size.

    Args:
        size: ``(H, W)`` of the input.
        batch: images in the batch.
        output_shape: shape of the ONNX output.
        max_abs_diff: largest absolute logit difference to PyTorch's output.
    """

    size: tuple[int, int]
    batch: int
    output_shape: tuple[int, ...]
    max_abs_diff: float


def unseen_sizes(size: Sequence[int], min_size: int = 1) -> list[tuple[int, int]]:
    """Two sizes beside the export's own ``(H, W)``: one wider and one taller, neither
    a multiple of the other (96x160 and 200x136 for 128x128), none below ``min_size``
    pixels a side (the model's smallest input; 32x40 and 50x34 for 32x32 at 32).

    Args:
        size: ``(H, W)`` of the export, each at least ``min_size``.
        min_size: the smallest height and width the model runs on (pixels).
    """
    height, width = size
    return [
        (max(round(height * 0.75), min_size), max(round(width * 1.25), min_size)),
        (max(round(height * 1.5625), min_size), max(round(width * 1.0625), min_size)),
    ]


def verify_onnx(
    model: torch.nn.Module,
    path: str,
    sizes: Sequence[tuple[int, int]],
    batch: int = 2,
    seed: int = 0,
) -> list[SizeCheck]:
    """Run ``model`` (the :class:`~mae_seg.deploy.export.SegmentorForExport` that was
    exported) and the file at ``path`` on the same random images of each size.

    Args:
        model: the PyTorch module, in eval mode.
        path: its ONNX export.
        sizes: ``(H, W)`` of each check.
        batch: images per check (1 for a file exported without ``--dynamic``).
        seed: seed of the random images (uniform in ``[0, 255]``).

    Returns:
        one :class:`SizeCheck` per size.
    """
    session = OnnxSegmentor(path)
    generator = torch.Generator().manual_seed(seed)
    checks = []
    for height, width in sizes:
        images = torch.rand(batch, 3, height, width, generator=generator) * 255
        with torch.no_grad():
            expected = model(images)
        actual = torch.from_numpy(session(images.numpy()))
        if actual.shape != expected.shape:
            difference = float('inf')
        else:
            difference = (actual - expected).abs().max().item()
        checks.append(SizeCheck((height, width), batch, tuple(actual.shape), difference))
    return checks
