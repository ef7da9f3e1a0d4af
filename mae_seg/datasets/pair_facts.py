"""What one image/annotation pair holds, read as cheaply as mmseg's loaders will read it.

mmseg's ``LoadImageFromFile`` decodes images with OpenCV, which turns them upright by their
EXIF orientation; ``LoadAnnotations`` decodes annotations with Pillow ``'unchanged'`` (no
EXIF turn), squeezes them and casts to ``uint8``. So an RGB mask reaches the loss as a
``(H, W, 3)`` array, a 16-bit mask has its values taken modulo 256, and a phone photo with
an orientation tag is ``(W, H)`` against its ``(H, W)`` annotation: all without an error.
Here image sizes come from the file header (nothing decoded) and only annotations are decoded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ['PairFacts', 'read_pair']

# EXIF orientations that rotate by 90 degrees (5-8), after which width and height swap.
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112
# Annotation modes that hold one class index per pixel.
INDEX_MODES = ('L', 'P', '1')


@dataclass
class PairFacts:
    """One pair as the loaders will see it.

    Attributes:
        img_path, seg_path: the files.
        image_size: ``(width, height)`` after the EXIF turn, or None if unreadable/missing.
        image_error: why the image cannot be read (``'missing'`` or the decoder's message).
        seg_size: ``(width, height)`` of the annotation.
        seg_mode: Pillow mode of the annotation (``'L'``, ``'P'``, ``'RGB'``, ``'I;16'``...).
        seg_error: why the annotation cannot be read.
        values: annotation values present (after the squeeze, before the ``uint8`` cast).
        counts: pixel count of each value in ``values``.
        channels_equal: for multi-channel masks, whether every channel holds the same values.
    """

    img_path: str
    seg_path: str | None
    image_size: tuple[int, int] | None = None
    image_error: str | None = None
    seg_size: tuple[int, int] | None = None
    seg_mode: str | None = None
    seg_error: str | None = None
    values: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    channels_equal: bool | None = None


def _error_text(error: Exception) -> str:
    return ' '.join(str(error).split()) or type(error).__name__


def _image_size(path: str) -> tuple[int, int]:
    """``(width, height)`` the OpenCV loader will produce, from the header only."""
    with Image.open(path) as image:
        width, height = image.size
        orientation = image.getexif().get(_EXIF_ORIENTATION) if image.format == 'JPEG' else None
    if orientation in _SWAPPING_ORIENTATIONS:
        return height, width
    return width, height


def _read_annotation(facts: PairFacts, read_values: bool) -> None:
    with Image.open(facts.seg_path) as annotation:
        facts.seg_mode = annotation.mode
        facts.seg_size = annotation.size
        if not read_values:
            return
        array = np.asarray(annotation)
    array = np.squeeze(array)
    if array.ndim == 3:
        facts.channels_equal = bool((array == array[..., :1]).all())
        array = array[..., 0]
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if array.dtype == np.uint8:
        counts = np.bincount(array.ravel(), minlength=256)
        facts.values = np.flatnonzero(counts)
        facts.counts = counts[facts.values]
    else:
        facts.values, facts.counts = np.unique(array, return_counts=True)


def read_pair(img_path: str, seg_path: str | None, read_values: bool = True) -> PairFacts:
    """Read what the check needs of one pair; never raises for a bad file.

    Args:
        img_path: the image file.
        seg_path: its annotation, None for a data set without annotations.
        read_values: decode the annotation for its values (else its header only).
    """
    facts = PairFacts(img_path, seg_path)
    try:
        facts.image_size = _image_size(img_path)
    except FileNotFoundError:
        facts.image_error = 'missing'
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        facts.image_error = _error_text(error)
    if seg_path is None:
        return facts
    try:
        _read_annotation(facts, read_values)
    except FileNotFoundError:
        facts.seg_error = 'missing'
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        facts.seg_error = _error_text(error)
    return facts
