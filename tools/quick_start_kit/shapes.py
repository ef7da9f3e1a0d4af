"""A small ADE20K-format data set of coloured shapes: the quick start's stand-in for ADE20K.

Layout as ``ADEChallengeData2016``: ``images/{training,validation}/*.jpg`` and
``annotations/{training,validation}/*.png`` with 0 = unlabelled (ignored) and ``k`` = the
``k``-th class. Class 1 is a textured grey background; classes 2-5 are shapes. Squares and
triangles share the warm colours, so for them colour alone does not tell the class and the
model has to learn the form; discs are blue and crosses green. A 2-pixel unlabelled band
surrounds every shape, like ADE20K's unannotated boundaries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = ['CLASSES', 'ShapesSpec', 'draw_sample', 'make_shapes_dataset']

# ADE20K's first five classes (mmseg ``ADE20KDataset`` order), so the standard data set class
# reads these files with ``metainfo=dict(classes=CLASSES)``; what each one looks like here:
CLASSES = ('wall', 'building', 'sky', 'floor', 'tree')
_WARM = ((200, 60, 50), (220, 140, 40), (210, 200, 60))
_BLUE = ((60, 90, 210), (90, 60, 200))
_GREEN = ((50, 170, 70), (90, 190, 40))
_LOOKS = {2: ('square', _WARM), 3: ('disc', _BLUE), 4: ('triangle', _WARM), 5: ('cross', _GREEN)}
IGNORE_BAND = 2


@dataclass(frozen=True)
class ShapesSpec:
    """Sizes of the generated data set.

    Args:
        num_train: training images.
        num_val: validation images.
        short_side: short side of every image; the long side is 1 to 1.5 times it.
        seed: seed of the generator; the same spec always gives the same files.
    """

    num_train: int = 200
    num_val: int = 16
    short_side: int = 128
    seed: int = 0


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Grey, low-frequency noise ``(H, W, 3)`` float."""
    coarse = rng.uniform(70, 170, size=(max(height // 16, 2), max(width // 16, 2)))
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.repeat(smooth[..., None], 3, axis=2)


def _shape_mask(rng: np.random.Generator, form: str, height: int, width: int) -> np.ndarray:
    """Boolean ``(H, W)`` mask of one shape of ``form`` at a random place and size."""
    mask = np.zeros((height, width), np.uint8)
    size = int(rng.integers(height // 6, height // 3))
    cx = int(rng.integers(size, width - size))
    cy = int(rng.integers(size, height - size))
    if form == 'square':
        cv2.rectangle(mask, (cx - size, cy - size), (cx + size, cy + size), 1, -1)
    elif form == 'disc':
        cv2.circle(mask, (cx, cy), size, 1, -1)
    elif form == 'triangle':
        points = np.array([[cx, cy - size], [cx - size, cy + size], [cx + size, cy + size]])
        cv2.fillPoly(mask, [points.astype(np.int32)], 1)
    else:
        arm = max(size // 3, 3)
        cv2.rectangle(mask, (cx - size, cy - arm), (cx + size, cy + arm), 1, -1)
        cv2.rectangle(mask, (cx - arm, cy - size), (cx + arm, cy + size), 1, -1)
    return mask.astype(bool)


def draw_sample(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One image and its label map.

    Returns:
        ``(H, W, 3)`` uint8 RGB image and ``(H, W)`` uint8 labels (0 ignore, 1..5 classes).
    """
    image = _background(rng, height, width)
    labels = np.ones((height, width), np.uint8)
    kernel = np.ones((2 * IGNORE_BAND + 1, 2 * IGNORE_BAND + 1), np.uint8)
    for _ in range(int(rng.integers(2, 5))):
        label = int(rng.integers(2, 2 + len(_LOOKS)))
        form, colours = _LOOKS[label]
        mask = _shape_mask(rng, form, height, width)
        colour = np.array(colours[int(rng.integers(len(colours)))]) + rng.uniform(-20, 20, 3)
        image[mask] = np.clip(colour, 0, 255)
        labels[mask] = label
        band = cv2.dilate(mask.astype(np.uint8), kernel) != cv2.erode(mask.astype(np.uint8), kernel)
        labels[band] = 0
    image += rng.normal(0, 8, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), labels


def _write_split(
    root: Path, split: str, prefix: str, count: int, spec: ShapesSpec, rng, progress
) -> None:
    image_dir = root / 'images' / split
    label_dir = root / 'annotations' / split
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    for index in range(1, count + 1):
        long_side = int(rng.integers(spec.short_side, int(spec.short_side * 1.5) + 1))
        height, width = (spec.short_side, long_side)
        if rng.random() < 0.3:
            height, width = width, height
        image, labels = draw_sample(rng, height, width)
        name = f'ADE_{prefix}_{index:08d}'
        cv2.imwrite(
            str(image_dir / f'{name}.jpg'), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90]
        )
        cv2.imwrite(str(label_dir / f'{name}.png'), labels)
        progress()


def make_shapes_dataset(
    root: str | Path, spec: ShapesSpec = ShapesSpec(), progress: Callable[[], object] = lambda: None
) -> Path:
    """Write the data set under ``root`` (an ``ADEChallengeData2016`` directory).

    ``progress()`` is called after each image written.

    Returns:
        ``root`` as a path.
    """
    root = Path(root)
    rng = np.random.default_rng(spec.seed)
    _write_split(root, 'training', 'train', spec.num_train, spec, rng, progress)
    _write_split(root, 'validation', 'val', spec.num_val, spec, rng, progress)
    return root
