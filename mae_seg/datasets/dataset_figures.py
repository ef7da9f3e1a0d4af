"""Figures of a data set check: class pixel frequencies and image | annotation overlays.

Drawn with Pillow and matplotlib's Agg backend, not mmseg's ``SegLocalVisualizer``: that
one calls ``cv2.rectangle`` on a non-contiguous array, which current OpenCV rejects.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..io.writing import atomic_output
from .label_rules import LabelRules
from .pair_facts import PairFacts

__all__ = ['class_colours', 'plot_class_pixels', 'write_overlays']

TILE_HEIGHT = 160


def class_colours(palette: Sequence | None, num_classes: int) -> np.ndarray:
    """``(256, 3)`` uint8 colour of every label: the palette, else fixed random colours.

    Labels without a class (the ignore index, out-of-range values) are black.
    """
    colours = np.zeros((256, 3), dtype=np.uint8)
    generated = np.random.default_rng(0).integers(40, 256, size=(num_classes, 3))
    given = np.asarray(palette, dtype=np.uint8)[:num_classes] if palette else generated[:0]
    colours[:num_classes] = generated
    colours[: len(given)] = given
    return colours


def plot_class_pixels(
    classes: Sequence[str], pixels: np.ndarray, path: str | Path, title: str
) -> None:
    """Bar plot (PNG) of each class's share of the labelled pixels, log scale.

    Args:
        classes: class names, ``len(pixels)`` of them.
        pixels: ``(num_classes,)`` pixel counts.
        path: the PNG to write (whole or not at all).
        title: the plot's title.
    """
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    total = max(int(pixels.sum()), 1)
    shares = pixels / total * 100
    figure, axes = plt.subplots(figsize=(6.4, 0.6 + 0.28 * len(classes)), dpi=80)
    positions = np.arange(len(classes))
    axes.barh(positions, np.where(shares > 0, shares, np.nan), color='tab:blue')
    for position, share in zip(positions, shares):
        text = f'{share:.2f}%' if share > 0 else 'never occurs'
        axes.text(share if share > 0 else 1e-3, position, f' {text}', va='center', fontsize=8)
    axes.set_yticks(positions, [str(name) for name in classes], fontsize=8)
    axes.invert_yaxis()
    axes.set_xscale('log')
    axes.set_xlim(1e-3, 300)
    axes.set_xlabel('share of labelled pixels (%)')
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format='png')
    plt.close(figure)


def _tile(image: Image.Image) -> Image.Image:
    width = max(1, round(image.width * TILE_HEIGHT / image.height))
    return image.resize((width, TILE_HEIGHT), Image.NEAREST)


def _overlay_row(fact: PairFacts, rules: LabelRules, colours: np.ndarray) -> Image.Image:
    with Image.open(fact.img_path) as opened:
        image = ImageOps.exif_transpose(opened).convert('RGB')
    with Image.open(fact.seg_path) as opened:
        values = np.asarray(opened)
    if values.ndim == 3:
        values = values[..., 0]
    labels = rules.labels_of(values)
    painted = Image.fromarray(colours[np.clip(labels, 0, 255)])
    if painted.size != image.size:
        painted = painted.resize(image.size, Image.NEAREST)
    blend = Image.blend(image, painted, 0.5)
    tiles = [_tile(image), _tile(painted), _tile(blend)]
    row = Image.new('RGB', (sum(tile.width for tile in tiles) + 8, TILE_HEIGHT), 'white')
    left = 0
    for tile in tiles:
        row.paste(tile, (left, 0))
        left += tile.width + 4
    return row


def write_overlays(
    facts: Sequence[PairFacts],
    rules: LabelRules,
    palette: Sequence | None,
    path: str | Path,
    count: int = 4,
) -> int:
    """PNG of ``count`` readable pairs, one row each: image | annotation | both blended.

    Returns:
        the number of rows drawn (0: nothing written).
    """
    readable = [
        fact
        for fact in facts
        if fact.image_size and fact.seg_path and fact.seg_size and not fact.seg_error
    ]
    colours = class_colours(palette, rules.num_classes or 256)
    rows = [_overlay_row(fact, rules, colours) for fact in readable[:count]]
    if not rows:
        return 0
    sheet = Image.new(
        'RGB', (max(row.width for row in rows), len(rows) * (TILE_HEIGHT + 4)), 'white'
    )
    for index, row in enumerate(rows):
        sheet.paste(row, (0, index * (TILE_HEIGHT + 4)))
    with atomic_output(path) as temporary:
        sheet.save(temporary, format='PNG')
    return len(rows)
