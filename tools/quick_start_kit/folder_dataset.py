"""The shapes data set in the own-data folder layout, optionally with planted faults.

``images/{train,val}/NAME.jpg`` and ``annotations/{train,val}/NAME.png`` as
``configs/_base_/datasets/own_data.py`` reads them; labels as in :mod:`.shapes` (0 an
unlabelled band, 1-5 the classes: ``reduce_zero_label=True`` with 5 classes). With
``plant_faults``, the training split gets one of each fault ``check_dataset.py`` must name:
labels out of range, a 3-channel RGB mask, an image without annotation and an annotation
of another size than its image. :func:`write_colour_masks` paints the annotations in class
colours, with a CVAT ``labelmap.txt``, for trying ``color_masks_to_index.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from .shapes import draw_sample

__all__ = [
    'FOLDER_CLASSES',
    'FOLDER_PALETTE',
    'make_folder_dataset',
    'plant_faults',
    'write_colour_masks',
]

# Labels 1-5 of :func:`draw_sample`, named by what they are here.
FOLDER_CLASSES = ('background', 'square', 'disc', 'triangle', 'cross')
# The palette of docs/own_data.md, one (r, g, b) per class.
FOLDER_PALETTE = ((120, 120, 120), (200, 60, 50), (60, 90, 210), (220, 140, 40), (50, 170, 70))
# The colour of the unlabelled value 0 (reduce_zero_label), entry 0 of the labelmap.
UNLABELLED = ('unlabelled', (0, 0, 0))
OUT_OF_RANGE_VALUE = 9


def _write_split(root: Path, split: str, count: int, short_side: int, rng, progress) -> list[str]:
    image_dir, label_dir = root / 'images' / split, root / 'annotations' / split
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        long_side = int(rng.integers(short_side, int(short_side * 1.5) + 1))
        height, width = (short_side, long_side) if rng.random() < 0.7 else (long_side, short_side)
        image, labels = draw_sample(rng, height, width)
        name = f'{split}_{index:06d}'
        cv2.imwrite(str(image_dir / f'{name}.jpg'), image[..., ::-1])
        cv2.imwrite(str(label_dir / f'{name}.png'), labels)
        names.append(name)
        progress()
    return names


def plant_faults(root: str | Path, names: list[str]) -> dict[str, str]:
    """Spoil four training pairs, one fault each.

    Returns:
        ``{fault: file}`` of what was planted.
    """
    labels = Path(root) / 'annotations' / 'train'
    out_of_range, rgb, missing, resized = (labels / f'{name}.png' for name in names[:4])
    mask = cv2.imread(str(out_of_range), cv2.IMREAD_UNCHANGED)
    mask[: mask.shape[0] // 4] = OUT_OF_RANGE_VALUE
    cv2.imwrite(str(out_of_range), mask)
    mask = cv2.imread(str(rgb), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(rgb), np.repeat(mask[..., None], 3, axis=2))
    missing.unlink()
    mask = cv2.imread(str(resized), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(resized), cv2.resize(mask, None, fx=0.5, fy=0.5, interpolation=0))
    return {
        'labels out of range': str(out_of_range),
        'RGB mask': str(rgb),
        'missing annotation': str(missing),
        'size mismatch': str(resized),
    }


def make_folder_dataset(
    root: str | Path,
    num_train: int = 200,
    num_val: int = 16,
    short_side: int = 128,
    seed: int = 0,
    progress: Callable[[], object] = lambda: None,
) -> list[str]:
    """Write the data set under ``root``.

    Returns:
        the names of the training pairs, in order.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = _write_split(root, 'train', num_train, short_side, rng, progress)
    _write_split(root, 'val', num_val, short_side, rng, progress)
    return names


def write_colour_masks(root: str | Path, out_dir: str | Path) -> Path:
    """Paint the annotations of ``root`` in class colours, as an annotation tool exports
    them: ``out_dir/{train,val}/NAME.png`` (RGB) and ``out_dir/labelmap.txt`` (CVAT).

    The annotations hold 0 for unlabelled pixels and ``k`` for class ``k - 1``
    (``reduce_zero_label=True``), so the labelmap lists the unlabelled colour first, then
    :data:`FOLDER_CLASSES`: one entry more than the class list, and converted back its line
    ``k`` is annotation value ``k``.

    Returns:
        the ``labelmap.txt`` written.

    Raises:
        ValueError: an annotation holds a value the labelmap has no colour for.
    """
    root, out_dir = Path(root), Path(out_dir)
    entries = [UNLABELLED, *zip(FOLDER_CLASSES, FOLDER_PALETTE)]
    colours = np.array([colour for _, colour in entries], dtype=np.uint8)
    for split in ('train', 'val'):
        (out_dir / split).mkdir(parents=True, exist_ok=True)
        for path in sorted((root / 'annotations' / split).glob('*.png')):
            labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if labels.ndim != 2 or labels.max() >= len(colours):
                raise ValueError(f'{path}: expected one channel of values 0-{len(colours) - 1}')
            cv2.imwrite(str(out_dir / split / path.name), colours[labels][..., ::-1])
    labelmap = out_dir / 'labelmap.txt'
    labelmap.write_text(
        '# label:color_rgb:parts:actions\n'
        + ''.join(f'{name}:{r},{g},{b}::\n' for name, (r, g, b) in entries)
    )
    return labelmap
