"""Colour-coded masks (one RGB colour per class) to the index PNGs mmseg's loader reads.

Annotation tools export masks painted in class colours and a class-colour file beside them:
CVAT's ``labelmap.txt`` (``name:r,g,b::`` lines), a CSV (``name,r,g,b``) or a JSON
(``{"name": [r, g, b]}``, ``[{"name": ..., "color": [r, g, b]}]`` or mmseg's
``{"classes": [...], "palette": [[r, g, b], ...]}``). Every pixel must carry a listed colour:
a colour that is not listed (anti-aliased edges, a class missing from the file) is reported
with its file and pixel count, never mapped to a nearby class.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ColourMaskError
from ..io.writing import atomic_output

__all__ = [
    'ClassColours',
    'ConversionReport',
    'UnknownColour',
    'colour_mask_to_index',
    'convert_colour_masks',
    'read_class_colours',
]


@dataclass(frozen=True)
class ClassColours:
    """Class names and their ``(r, g, b)`` colours, in label order."""

    names: tuple[str, ...]
    colours: np.ndarray  # (num_classes, 3) uint8

    def palette(self) -> list[list[int]]:
        """The colours as a config's ``metainfo['palette']``."""
        return self.colours.tolist()


@dataclass(frozen=True)
class UnknownColour:
    path: str
    colour: tuple[int, int, int]
    pixels: int

    def __str__(self) -> str:
        return f'{self.path}: colour {self.colour} in {self.pixels} pixels is not in the class list'


#: Unknown colours a report names one by one; the rest are counted.
SHOWN_UNKNOWN = 10


@dataclass
class ConversionReport:
    converted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # not written: unknown colours
    unknown: list[UnknownColour] = field(default_factory=list)
    # Grey masks (one channel or equal channels) with values that are no listed colour,
    # {path: values}: index masks given by mistake, named once rather than value by value.
    grey: dict[str, list[int]] = field(default_factory=dict)

    def grey_summary(self) -> str | None:
        """One line on the grey masks that were not converted, or None if there were none."""
        if not self.grey:
            return None
        path, values = next(iter(self.grey.items()))
        shown = ', '.join(map(str, values[:8])) + (', ...' if len(values) > 8 else '')
        return (
            f'{len(self.grey)} masks are grey (one channel, or three equal channels) with '
            f'values that are no listed colour (first {path}: values {shown}): these look '
            'like index masks already, which the config reads as they are; they were not '
            'converted'
        )

    def unknown_shown(self, limit: int = SHOWN_UNKNOWN) -> tuple[list[UnknownColour], str | None]:
        """The first ``limit`` unknown colours, and a line counting the rest (or None)."""
        rest = self.unknown[limit:]
        if not rest:
            return self.unknown, None
        files = len({unknown.path for unknown in rest})
        return self.unknown[:limit], f'{len(rest)} more unknown colours in {files} masks'


def _rgb(values: list[str], where: str) -> tuple[int, int, int]:
    try:
        rgb = tuple(int(value) for value in values)
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0 <= value <= 255 for value in rgb):
        raise ColourMaskError(f'{where}: expected a colour r,g,b of 0-255, got {values}')
    return rgb


def _cvat_entries(text: str, path: str) -> list[tuple[str, tuple[int, int, int]]]:
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith('#'):
            continue
        name, _, rest = line.partition(':')
        colour = rest.split(':')[0]
        entries.append((name.strip(), _rgb(colour.split(','), f'{path} line {number}')))
    return entries


def _csv_entries(text: str, path: str) -> list[tuple[str, tuple[int, int, int]]]:
    entries = []
    for number, row in enumerate(csv.reader(text.splitlines()), 1):
        row = [cell.strip() for cell in row]
        if not row or not any(row) or row[0].startswith('#'):
            continue
        if number == 1 and not row[-1].isdigit():
            continue  # a header line
        if len(row) != 4:
            raise ColourMaskError(f'{path} line {number}: expected name,r,g,b, got {row}')
        entries.append((row[0], _rgb(row[1:], f'{path} line {number}')))
    return entries


def _json_entries(text: str, path: str) -> list[tuple[str, tuple[int, int, int]]]:
    data = json.loads(text)
    if isinstance(data, dict) and 'classes' in data and 'palette' in data:
        if len(data['classes']) != len(data['palette']):
            raise ColourMaskError(
                f'{path}: {len(data["classes"])} classes but {len(data["palette"])} colours'
            )
        pairs = list(zip(data['classes'], data['palette']))
    elif isinstance(data, dict):
        pairs = list(data.items())
    elif isinstance(data, list) and all(isinstance(item, dict) for item in data):
        pairs = [(item.get('name'), item.get('color', item.get('colour'))) for item in data]
    else:
        raise ColourMaskError(
            f'{path}: expected {{"name": [r, g, b]}}, [{{"name": ..., "color": [r, g, b]}}] '
            'or {"classes": [...], "palette": [...]}'
        )
    return [(str(name), _rgb(list(colour or []), f'{path}: {name}')) for name, colour in pairs]


def read_class_colours(path: str | os.PathLike) -> ClassColours:
    """Read a class-colour file (CVAT ``labelmap.txt``, ``.csv`` or ``.json``).

    Raises:
        ColourMaskError: unreadable, malformed, empty, a colour listed twice, or more
            classes than an 8-bit index PNG holds (255: 255 itself is the ignore index).
    """
    path = str(path)
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ColourMaskError(f'class-colour file {path} cannot be read: {error}') from error
    try:
        if path.endswith('.json'):
            entries = _json_entries(text, path)
        elif path.endswith('.csv'):
            entries = _csv_entries(text, path)
        else:
            entries = _cvat_entries(text, path)
    except json.JSONDecodeError as error:
        raise ColourMaskError(f'{path} is not valid JSON: {error}') from error
    if not entries:
        raise ColourMaskError(f'{path} lists no class')
    if len(entries) > 255:
        raise ColourMaskError(f'{path} lists {len(entries)} classes; index PNGs hold 255')
    seen: dict[tuple[int, int, int], str] = {}
    for name, colour in entries:
        if colour in seen:
            raise ColourMaskError(f'{path}: {seen[colour]} and {name} share colour {colour}')
        seen[colour] = name
    names, colours = zip(*entries)
    return ClassColours(tuple(names), np.asarray(colours, dtype=np.uint8))


def _colour_codes(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def colour_mask_to_index(
    rgb: np.ndarray, classes: ClassColours, unknown_index: int | None = None
) -> tuple[np.ndarray, dict[tuple[int, int, int], int]]:
    """Class indices of an RGB mask.

    Args:
        rgb: ``(H, W, 3)`` uint8 mask.
        classes: the class colours; class ``k`` is ``classes.colours[k]``.
        unknown_index: the index given to unlisted colours (e.g. 255, ignored by the loss);
            None leaves them 255 too but the caller is expected to refuse the mask.

    Returns:
        ``(H, W)`` uint8 indices, and ``{colour: pixel count}`` of the unlisted colours.
    """
    codes, inverse, counts = np.unique(
        _colour_codes(rgb).ravel(), return_inverse=True, return_counts=True
    )
    known = dict(zip(_colour_codes(classes.colours).tolist(), range(len(classes.names))))
    fill = 255 if unknown_index is None else unknown_index
    lookup = np.array([known.get(code, fill) for code in codes.tolist()], dtype=np.uint8)
    unknown = {
        ((code >> 16) & 255, (code >> 8) & 255, code & 255): int(count)
        for code, count in zip(codes.tolist(), counts.tolist())
        if code not in known
    }
    return lookup[inverse].reshape(rgb.shape[:2]), unknown


def _read_rgb(path: Path) -> tuple[np.ndarray, bool]:
    """``(H, W, 3)`` uint8, and whether the file is grey: one channel (not a palette
    image, whose indices stand for colours) or three equal channels."""
    try:
        with Image.open(path) as image:
            one_channel = image.mode in ('1', 'L', 'LA', 'I', 'I;16', 'F')
            rgb = np.asarray(image.convert('RGB'))
    except (OSError, UnidentifiedImageError) as error:
        raise ColourMaskError(f'{path} cannot be read as an image: {error}') from error
    equal_channels = (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    return rgb, one_channel or bool(equal_channels)


def _write_index_png(index: np.ndarray, classes: ClassColours, path: Path) -> None:
    """A palette ('P') PNG: the loader reads its indices, a viewer shows the class colours."""
    image = Image.fromarray(index, mode='L').convert('P')
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[: len(classes.names)] = classes.colours
    image.putpalette(palette.ravel().tolist())
    with atomic_output(path) as temporary:
        image.save(temporary, format='PNG')


def convert_colour_masks(
    source_dir: str | os.PathLike,
    target_dir: str | os.PathLike,
    classes: ClassColours,
    suffix: str = '.png',
    unknown_index: int | None = None,
) -> ConversionReport:
    """Convert every ``*suffix`` mask under ``source_dir`` into ``target_dir`` (same tree).

    Args:
        unknown_index: None (default): a mask with an unlisted colour is not written and is
            reported; an index (e.g. 255): unlisted colours get it, and are reported too. A
            grey mask with unlisted values (an index mask) is never written, and is reported
            in ``grey``.

    Raises:
        ColourMaskError: ``source_dir`` holds no such mask, or one cannot be read.
    """
    source_dir, target_dir = Path(source_dir), Path(target_dir)
    masks = sorted(source_dir.rglob(f'*{suffix}')) if source_dir.is_dir() else []
    if not masks:
        raise ColourMaskError(f'no *{suffix} masks under {source_dir}')
    if target_dir.resolve() == source_dir.resolve():
        raise ColourMaskError(f'{target_dir} is the source folder; give another output folder')
    report = ConversionReport()
    for mask in masks:
        rgb, grey = _read_rgb(mask)
        index, unknown = colour_mask_to_index(rgb, classes, unknown_index)
        if unknown and grey:
            # Grey classes may be listed; a grey mask with unlisted greys is an index mask.
            report.grey[str(mask)] = np.unique(rgb[..., 0]).tolist()
            report.skipped.append(str(mask))
            continue
        report.unknown += [
            UnknownColour(str(mask), colour, count)
            for colour, count in sorted(unknown.items(), key=lambda item: -item[1])
        ]
        if unknown and unknown_index is None:
            report.skipped.append(str(mask))
            continue
        target = target_dir / mask.relative_to(source_dir).with_suffix('.png')
        _write_index_png(index, classes, target)
        report.converted.append(str(target))
    return report
