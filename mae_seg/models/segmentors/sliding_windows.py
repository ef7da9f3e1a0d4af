"""Sliding-window geometry: where mmseg's slide inference puts its windows. Pure functions."""

from __future__ import annotations

__all__ = ['Window', 'sliding_windows']

Window = tuple[int, int, int, int]


def sliding_windows(
    image_hw: tuple[int, int], crop_hw: tuple[int, int], stride_hw: tuple[int, int]
) -> list[Window]:
    """The windows of mmseg's ``EncoderDecoder.slide_inference``, in its order.

    Rows of windows every ``stride`` pixels, the last one moved back to end at the border;
    an image smaller than the crop is one window of the image's size in that direction, so
    all windows of an image have the same size.

    Args:
        image_hw: ``(H, W)`` of the image.
        crop_hw: window size ``(h, w)``.
        stride_hw: step ``(h, w)`` between windows.

    Returns:
        ``(y1, y2, x1, x2)`` of every window, row by row.
    """
    (height, width), (crop_h, crop_w), (stride_h, stride_w) = image_hw, crop_hw, stride_hw
    rows = max(height - crop_h + stride_h - 1, 0) // stride_h + 1
    cols = max(width - crop_w + stride_w - 1, 0) // stride_w + 1
    windows = []
    for row in range(rows):
        for col in range(cols):
            y2 = min(row * stride_h + crop_h, height)
            x2 = min(col * stride_w + crop_w, width)
            windows.append((max(y2 - crop_h, 0), y2, max(x2 - crop_w, 0), x2))
    return windows
