"""How annotation values become training labels, and the problems of one pair.

The rules are mmseg's ``LoadAnnotations``: cast to ``uint8``; with ``reduce_zero_label``
0 becomes 255 and every other value drops by one; then the data set's ``label_map`` (set when
its ``metainfo`` classes are a subset of the class's own) renames labels. A label is valid
when it is below ``num_classes`` or equals the decode head's ``ignore_index``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .pair_facts import INDEX_MODES, PairFacts

__all__ = ['LabelRules', 'Problem', 'pair_problems']

_CONVERTER = 'tools/dataset_converters/color_masks_to_index.py'


@dataclass(frozen=True)
class LabelRules:
    """What the loaders and the loss make of annotation values.

    Attributes:
        num_classes: the decode head's ``num_classes``; None where the config has none.
        reduce_zero_label: the data set's ``reduce_zero_label``.
        ignore_index: the label the loss skips (the decode head's ``ignore_index``).
        label_map: the data set's ``label_map`` (old label -> new label), or None.
        listed_classes: how many classes the data set's ``metainfo`` lists (None: no list).
    """

    num_classes: int | None
    reduce_zero_label: bool = False
    ignore_index: int = 255
    label_map: dict[int, int] | None = None
    listed_classes: int | None = None  # length of the data set's class list, if it has one

    def lookup(self) -> np.ndarray:
        """``(256,)`` int64: the training label of each ``uint8`` annotation value."""
        labels = np.arange(256, dtype=np.int64)
        if self.reduce_zero_label:
            # 0 and 255 both end as 255 (mmseg maps 0 to 255, subtracts 1, then 254 to 255).
            labels = np.where((labels == 0) | (labels == 255), 255, labels - 1)
        if self.label_map:
            mapped = labels.copy()
            for old, new in self.label_map.items():
                mapped[labels == old] = new
            labels = mapped
        return labels

    def labels_of(self, values: np.ndarray) -> np.ndarray:
        """Training labels of raw annotation values (wrapped to ``uint8`` as the loader does)."""
        return self.lookup()[np.asarray(values, dtype=np.int64) % 256]

    def is_valid(self, labels: np.ndarray) -> np.ndarray:
        if self.num_classes is None:
            return np.ones(len(labels), dtype=bool)
        return (labels < self.num_classes) | (labels == self.ignore_index)

    def describe(self) -> str:
        """The settings a label range message depends on, as the config names them."""
        text = f'num_classes={self.num_classes} (ignore_index={self.ignore_index}'
        if self.reduce_zero_label:
            text += '; reduce_zero_label: 0 -> 255, others -1'
        if self.label_map:
            text += '; label_map of the metainfo classes'
        return f'{text})'


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file: ``kind`` groups problems for the summary."""

    kind: str
    path: str
    found: str
    fix: str
    labels: tuple[int, ...] = ()  # the invalid labels, for 'label-out-of-range'

    def __str__(self) -> str:
        return f'{self.path}: {self.found}; {self.fix}'


def _values_text(values: np.ndarray, limit: int = 8) -> str:
    shown = ', '.join(str(int(value)) for value in values[:limit])
    return shown + (f' (+{len(values) - limit} more)' if len(values) > limit else '')


def _channel_problem(facts: PairFacts) -> Problem | None:
    mode = facts.seg_mode
    if mode in INDEX_MODES or mode in ('I;16', 'I;16B', 'I;16L', 'I', 'F') or mode is None:
        return None
    if facts.channels_equal:
        fix = "the channels are equal: save one of them as a one-channel ('L') PNG"
    else:
        fix = f'a colour-coded mask: convert it to class indices with {_CONVERTER}'
    return Problem(
        'annotation-channels',
        facts.seg_path,
        f"annotation mode '{mode}' has {len(mode)} channels; mmseg's loader needs one "
        'class index per pixel',
        fix,
    )


def _range_fix(largest: int, has_zero: bool, rules: LabelRules) -> str:
    """What to change when labels up to ``largest`` meet ``rules``."""
    listed, count = rules.listed_classes, rules.num_classes or 0
    if listed and listed > count and largest < listed:
        fix = f'set num_classes={listed} in every head (the data set lists {listed} classes)'
    elif listed and largest >= listed:
        fix = (
            f'fix the annotation (the data set lists {listed} classes: labels 0-{listed - 1}, '
            f'{rules.ignore_index} ignored) or add classes to the list and num_classes'
        )
    else:
        fix = f'set num_classes to at least {largest + 1} in every head, or fix the annotation'
    if not rules.reduce_zero_label and has_zero and largest == count:
        fix += '; if 0 marks unlabelled pixels, set reduce_zero_label=True'
    return fix


def _range_problems(facts: PairFacts, rules: LabelRules) -> list[Problem]:
    problems = []
    if facts.values.size and facts.values.max() > 255:
        problems.append(
            Problem(
                'annotation-wide-values',
                facts.seg_path,
                f'{facts.seg_mode} annotation holds values above 255 '
                f'({_values_text(facts.values[facts.values > 255])}), which the loader '
                'casts to uint8 (value % 256)',
                'store at most 255 classes, one index per pixel, as an 8-bit PNG',
            )
        )
    labels = rules.labels_of(facts.values)
    bad = ~rules.is_valid(labels)
    if bad.any():
        fix = _range_fix(int(labels[bad].max()), 0 in facts.values, rules)
        problems.append(
            Problem(
                'label-out-of-range',
                facts.seg_path,
                f'annotation values {_values_text(facts.values[bad])} become labels '
                f'{_values_text(np.unique(labels[bad]))}, outside {rules.describe()}',
                fix,
                labels=tuple(int(label) for label in np.unique(labels[bad])),
            )
        )
    return problems


def pair_problems(facts: PairFacts, rules: LabelRules) -> list[Problem]:
    """Everything wrong with one pair, as lines naming the file, the value and the fix."""
    problems = []
    if facts.image_error == 'missing':
        problems.append(
            Problem('image-missing', facts.img_path, 'image missing', 'add it or drop the entry')
        )
    elif facts.image_error:
        problems.append(
            Problem(
                'image-unreadable',
                facts.img_path,
                f'image cannot be read ({facts.image_error})',
                'replace or remove the file',
            )
        )
    if facts.seg_path is None:
        return problems
    if facts.seg_error == 'missing':
        problems.append(
            Problem(
                'annotation-missing',
                facts.seg_path,
                f'no annotation for image {facts.img_path}',
                'add it, remove the image, or fix seg_map_suffix / data_prefix',
            )
        )
        return problems
    if facts.seg_error:
        problems.append(
            Problem(
                'annotation-unreadable',
                facts.seg_path,
                f'annotation cannot be read ({facts.seg_error})',
                'replace or remove the file',
            )
        )
        return problems
    channel_problem = _channel_problem(facts)
    if channel_problem:
        problems.append(channel_problem)
    else:
        problems += _range_problems(facts, rules)
    if facts.image_size and facts.seg_size and facts.image_size != facts.seg_size:
        fix = 'make them the same size (resize the annotation with nearest-neighbour)'
        if facts.image_size == facts.seg_size[::-1]:
            fix = (
                "the image's EXIF orientation or a transposed save turns it: save the image "
                'upright without the orientation tag, or turn the annotation'
            )
        problems.append(
            Problem(
                'size-mismatch',
                facts.seg_path,
                f'annotation is {facts.seg_size[0]}x{facts.seg_size[1]} but its image '
                f'{facts.img_path} loads as {facts.image_size[0]}x{facts.image_size[1]} '
                '(width x height)',
                fix,
            )
        )
    return problems
