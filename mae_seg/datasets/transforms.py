"""Resizing for multi-scale testing of models evaluated with full sliding-window crops."""

from __future__ import annotations

from collections.abc import Sequence

from mmseg.datasets.transforms import Resize
from mmseg.registry import TRANSFORMS

__all__ = ['MinSizeResize', 'min_size_scale_factor']


def min_size_scale_factor(
    image_hw: Sequence[int], target_wh: Sequence[float], min_size: int
) -> float:
    """Keep-ratio scale factor towards ``target_wh``, raised so the short side reaches ``min_size``.

    The first factor is the one ``mmcv.imrescale`` uses for a ``(w, h)`` target: the largest
    that fits the long side in ``max(target_wh)`` and the short side in ``min(target_wh)``.

    Args:
        image_hw: ``(height, width)`` of the image.
        target_wh: ``(width, height)`` the image is rescaled to fit, keeping its ratio.
        min_size: the smallest short side allowed after resizing.

    Returns:
        the factor both sides are multiplied by.
    """
    long_side, short_side = max(image_hw), min(image_hw)
    factor = min(max(target_wh) / long_side, min(target_wh) / short_side)
    return max(factor, min_size / short_side)


@TRANSFORMS.register_module()
class MinSizeResize(Resize):
    """Keep-ratio ``Resize`` whose output short side is never below ``min_size``.

    MAE's published multi-scale recipe (mmseg 0.x ``Resize(min_size=512)``) tests at ratios
    0.5-1.75 of ``(2048, 512)`` but keeps every short side at >= 512, so each sliding
    window is a full 512x512 crop. Image and segmentation maps get the same factor.

    Args:
        min_size: the smallest short side, usually the sliding-window crop size.
        scale: ``(w, h)`` target as in ``Resize``.
        scale_factor: factor of the input size, used when ``scale`` is None.
        **kwargs: other ``Resize`` arguments (``interpolation``, ``backend``, ...).
    """

    def __init__(
        self,
        min_size: int,
        scale: int | tuple[int, int] | None = None,
        scale_factor: float | tuple[float, float] | None = None,
        **kwargs,
    ) -> None:
        if not kwargs.pop('keep_ratio', True):
            raise ValueError('MinSizeResize keeps the aspect ratio; do not set keep_ratio=False')
        if min_size <= 0:
            raise ValueError(f'MinSizeResize: min_size must be positive, got {min_size}')
        super().__init__(scale=scale, scale_factor=scale_factor, keep_ratio=True, **kwargs)
        self.min_size = min_size

    def _resize_img(self, results: dict) -> None:
        # ``Resize.transform`` resizes the image first and the maps afterwards with the same
        # ``results['scale']``, so replacing the target by a factor here covers both.
        if results.get('img') is not None:
            results['scale'] = min_size_scale_factor(
                results['img'].shape[:2], results['scale'], self.min_size
            )
        super()._resize_img(results)

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(scale={self.scale}, scale_factor={self.scale_factor}, '
            f'min_size={self.min_size}, interpolation={self.interpolation})'
        )
