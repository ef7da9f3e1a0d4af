"""Whole-image inference against sliding windows, on an image wider than the crop.

MAEViT runs at any token grid, so an ADE20K image (short side 512) can be segmented in
one pass; mmseg's MAE only runs crops of its training size. Both ways are timed on the
same segmentor, and the two predictions compared pixel by pixel.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .measure import summarize, time_interleaved
from .workloads import SegmentorWorkload

__all__ = ['WHOLE_VS_SLIDE_STEPS', 'compare_whole_and_slide']

WHOLE_VS_SLIDE_STEPS = {
    'slide_mmseg': "mmseg's MAE, slide",
    'slide_ours': 'MAEViT, slide',
    'whole_ours': 'MAEViT, whole',
}


def compare_whole_and_slide(
    workload: SegmentorWorkload,
    models: dict[str, nn.Module],
    image_size: tuple[int, int] = (512, 683),
    warmup: int = 1,
    rounds: int = 3,
    synchronize: Callable[[], None] = lambda: None,
    image: str | None = None,
) -> dict:
    """Time ``mode='slide'`` and ``mode='whole'`` and compare their predictions.

    Args:
        workload: the segmentor workload; ``models`` come from it with the same weights.
        models: ``'mmseg'`` and ``'ours'`` segmentors.
        image_size: ``(H, W)`` of the test image; the windows are the workload's.
        warmup: untimed runs of each way first.
        rounds: timed runs of each way.
        synchronize: waits for queued device work.
        image: an image file, resized to ``image_size`` (default: random pixels).

    Returns:
        per way its times; ``whole_vs_slide_pixel_agreement``: share of pixels where
        MAEViT's whole and slide predictions agree; ``slide_ours_vs_mmseg_pixel_agreement``
        the same for the two slide predictions (a check that the weights are the same);
        ``classes_predicted``: distinct classes in the whole prediction.
    """
    if image is None:
        images, metas, _ = workload.inputs(1, size=image_size)
    else:
        images, metas, _ = workload.image_inputs(image, image_size)
    ways = {
        'slide_mmseg': (models['mmseg'], 'slide'),
        'slide_ours': (models['ours'], 'slide'),
        'whole_ours': (models['ours'], 'whole'),
    }
    labels: dict[str, torch.Tensor] = {}

    def predict(name: str) -> Callable[[], None]:
        model, mode = ways[name]

        def step() -> None:
            workload.set_test_mode(model, mode)
            model.eval()
            with torch.no_grad():
                labels[name] = workload.infer(model, (images, metas, None)).argmax(1)

        return step

    times, _ = time_interleaved({name: predict(name) for name in ways}, warmup, rounds, synchronize)
    for model in models.values():
        workload.set_test_mode(model, 'whole')

    def agreement(a: str, b: str) -> float:
        return (labels[a] == labels[b]).float().mean().item()

    ways_stats = {name: summarize(times[name]) for name in ways}
    for stats in ways_stats.values():
        stats['speedup'] = ways_stats['slide_mmseg']['median'] / stats['median']
    return dict(
        image_size=list(image_size),
        crop=list(workload.slide_crop),
        stride=list(workload.slide_stride),
        ways=ways_stats,
        whole_vs_slide_pixel_agreement=agreement('whole_ours', 'slide_ours'),
        slide_ours_vs_mmseg_pixel_agreement=agreement('slide_ours', 'slide_mmseg'),
        classes_predicted=int(labels['whole_ours'].unique().numel()),
    )
