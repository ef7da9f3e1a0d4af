"""Checks a config's data sets against what its model and loaders expect.

:func:`check_split` reads every pair of one dataloader's data set (or an evenly spaced
sample of them, for ``tools/train.py --check`` and ``tools/test.py``) and returns each
problem as one line naming the file, the value found and the fix, with the class pixel
frequencies. ``tools/analysis/check_dataset.py`` prints and plots the full check.
"""

from __future__ import annotations

import copy
import os
import os.path as osp
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from mmengine.config import Config
from mmengine.dataset import BaseDataset
from mmseg.registry import DATASETS

from .label_rules import LabelRules, Problem, pair_problems
from .pair_facts import PairFacts, read_pair

__all__ = [
    'SplitReport',
    'SplitSource',
    'check_split',
    'problems_line',
    'sampled_split_check',
    'sampled_split_problems',
    'shared_setting_problems',
    'split_source',
]

SPLIT_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
# Pairs read by the sampled check: enough to meet a systematic fault (every mask RGB, every
# label shifted) in seconds; rare faults are the full check's job.
SAMPLE_SIZE = 48


@dataclass
class SplitSource:
    """Where one dataloader's pairs are and how their labels are read.

    Attributes:
        key: the dataloader's config key.
        pairs: ``(image, annotation or None)`` paths in the loader's order.
        orphans: annotation files that no image uses.
        classes: the data set's class names (None when its metainfo has none).
        palette: their colours.
        rules: how annotation values become labels.
        seg_map_suffix: the data set's annotation suffix.
    """

    key: str
    pairs: list[tuple[str, str | None]]
    orphans: list[str]
    classes: tuple[str, ...] | None
    palette: list | None
    rules: LabelRules
    seg_map_suffix: str = '.png'


@dataclass
class SplitReport:
    """What :func:`check_split` found for one dataloader."""

    source: SplitSource
    checked: int
    problems: list[Problem] = field(default_factory=list)
    # Pixels of each label below num_classes, and pixels at ignore_index.
    class_pixels: np.ndarray | None = None
    ignored_pixels: int = 0
    facts: list[PairFacts] = field(default_factory=list)

    @property
    def absent_classes(self) -> list[str]:
        """Classes of the list that no checked pixel carries."""
        if self.class_pixels is None or not self.source.classes:
            return []
        return [name for name, count in zip(self.source.classes, self.class_pixels) if count == 0]


def _heads(model_cfg: dict) -> list[tuple[str, dict]]:
    heads = []
    for name in ('decode_head', 'auxiliary_head'):
        node = model_cfg.get(name)
        nodes = node if isinstance(node, (list, tuple)) else [node]
        heads += [
            (f'model.{name}' + (f'[{i}]' if len(nodes) > 1 else ''), head)
            for i, head in enumerate(nodes)
            if isinstance(head, dict)
        ]
    return heads


def _decode_head(cfg: Config) -> dict:
    heads = [head for name, head in _heads(cfg.get('model') or {}) if 'decode_head' in name]
    return heads[-1] if heads else {}


def _leaf_dataset_cfg(dataset_cfg: dict) -> dict:
    """The data set inside ``RepeatDataset`` / ``ConcatDataset`` style wrappers (the first)."""
    while 'dataset' in dataset_cfg or 'datasets' in dataset_cfg:
        dataset_cfg = dataset_cfg.get('dataset') or dataset_cfg['datasets'][0]
    return dataset_cfg


def _files_under(directory: str, suffix: str) -> set[str]:
    found = set()
    for root, _, names in os.walk(directory):
        found.update(osp.join(root, name) for name in names if name.endswith(suffix))
    return found


def _lazy_dataset(cfg: Config, key: str):
    """The dataloader's data set, built without listing its files."""
    dataset_cfg = copy.deepcopy(_leaf_dataset_cfg(cfg[key]['dataset']))
    dataset_cfg['lazy_init'] = True
    return DATASETS.build(dataset_cfg)


def _label_rules(cfg: Config, dataset) -> LabelRules:
    head = _decode_head(cfg)
    return LabelRules(
        num_classes=head.get('num_classes'),
        reduce_zero_label=bool(getattr(dataset, 'reduce_zero_label', False)),
        ignore_index=int(head.get('ignore_index', 255)),
        label_map=getattr(dataset, 'label_map', None),
        listed_classes=len(classes) if (classes := dataset.metainfo.get('classes')) else None,
    )


def split_source(cfg: Config, key: str) -> SplitSource:
    """List one dataloader's pairs as its data set will, without loading them.

    Raises:
        FileNotFoundError: the data set's directories do not exist.
    """
    dataset = _lazy_dataset(cfg, key)
    data_list = dataset.load_data_list() if isinstance(dataset, BaseDataset) else []
    pairs = [(info['img_path'], info.get('seg_map_path')) for info in data_list]
    ann_dir = (getattr(dataset, 'data_prefix', {}) or {}).get('seg_map_path')
    orphans: list[str] = []
    if ann_dir and osp.isdir(ann_dir) and not getattr(dataset, 'ann_file', ''):
        seg_suffix = getattr(dataset, 'seg_map_suffix', '.png')
        orphans = sorted(_files_under(ann_dir, seg_suffix) - {seg for _, seg in pairs})
    classes = dataset.metainfo.get('classes')
    return SplitSource(
        key=key,
        pairs=pairs,
        orphans=orphans,
        classes=tuple(classes) if classes else None,
        palette=dataset.metainfo.get('palette'),
        rules=_label_rules(cfg, dataset),
        seg_map_suffix=getattr(dataset, 'seg_map_suffix', '.png'),
    )


def _suffix_problem(source: SplitSource, missing: set[str], present: set[str]) -> Problem | None:
    """When annotations are missing but files named after the images are there, name the
    suffix those carry (``a.jpg`` with ``a_mask.png`` beside ``seg_map_suffix='.png'``)."""
    by_folder: dict[str, list[str]] = {}
    for path in present:
        by_folder.setdefault(osp.dirname(path), []).append(osp.basename(path))
    suffixes: Counter = Counter()
    examples = [pair for pair in source.pairs if pair[1] in missing][:20]
    for _, seg_path in examples:
        stem = osp.basename(seg_path)[: -len(source.seg_map_suffix) or None]
        suffixes.update(
            name[len(stem) :]
            for name in by_folder.get(osp.dirname(seg_path), [])
            if name.startswith(stem) and len(name) > len(stem)
        )
    if not suffixes:
        return None
    suffix, _ = suffixes.most_common(1)[0]
    img_path, seg_path = examples[0]
    stem = osp.basename(seg_path)[: -len(source.seg_map_suffix) or None]
    return Problem(
        'seg-map-suffix',
        osp.dirname(seg_path),
        f'{len(missing)} of {len(source.pairs)} images have no annotation ending in '
        f"seg_map_suffix='{source.seg_map_suffix}', but {stem + suffix} is there for {img_path}",
        f"set seg_map_suffix='{suffix}' in {source.key}.dataset",
    )


def _pairing_problems(source: SplitSource, missing: set[str], present: set[str]) -> list[Problem]:
    if len(missing) > 1:
        suffix = _suffix_problem(source, missing, present)
        if suffix is not None:
            return [suffix]  # one line for a whole folder named the other way
    problems = [
        Problem(
            'annotation-missing',
            seg,
            f'no annotation for image {img}',
            'add it, remove the image, or fix seg_map_suffix / data_prefix',
        )
        for img, seg in source.pairs
        if seg in missing
    ]
    return problems + [
        Problem(
            'annotation-without-image',
            orphan,
            'annotation has no image (the loader skips it)',
            'add its image or remove it; check img_suffix',
        )
        for orphan in source.orphans
    ]


def _listed_annotations(pairs: list[tuple[str, str | None]]) -> tuple[set[str], set[str]]:
    """Missing annotation paths, and every file in their folders: one listing per folder
    rather than a stat per file."""
    annotated = [seg for _, seg in pairs if seg is not None]
    present: set[str] = set()
    for directory in {osp.dirname(seg) for seg in annotated}:
        if osp.isdir(directory):
            present.update(osp.join(directory, name) for name in os.listdir(directory))
    return {seg for seg in annotated if seg not in present}, present


def _sample(pairs: list, size: int | None) -> list:
    if size is None or len(pairs) <= size:
        return list(pairs)
    indices = np.linspace(0, len(pairs) - 1, size).round().astype(int)
    return [pairs[i] for i in np.unique(indices)]


def _read_all(pairs: list[tuple[str, str | None]], workers: int) -> list[PairFacts]:
    if workers <= 1 or len(pairs) < 256:
        return [read_pair(img, seg) for img, seg in pairs]
    chunk = max(64, len(pairs) // (workers * 8))
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(read_pair, *zip(*pairs), chunksize=chunk))


def _class_pixels(facts: list[PairFacts], rules: LabelRules) -> tuple[np.ndarray, int]:
    lookup = rules.lookup()
    size = rules.num_classes or 256
    pixels = np.zeros(size, dtype=np.int64)
    ignored = 0
    for fact in facts:
        if fact.seg_error or not fact.values.size:
            continue
        labels = lookup[fact.values.astype(np.int64) % 256]
        ignored += int(fact.counts[labels == rules.ignore_index].sum())
        inside = labels < size
        np.add.at(pixels, labels[inside], fact.counts[inside])
    return pixels, ignored


def check_split(
    source: SplitSource, sample: int | None = None, workers: int | None = None
) -> SplitReport:
    """Read the pairs of one split and name every problem.

    Args:
        source: from :func:`split_source`.
        sample: read only this many evenly spaced pairs (None: all); missing annotations
            are still found for every pair.
        workers: processes reading pairs (default: the CPUs this process may use).
    """
    workers = workers or len(os.sched_getaffinity(0))
    missing, present = _listed_annotations(source.pairs)
    report = SplitReport(source, checked=0, problems=_pairing_problems(source, missing, present))
    readable = [pair for pair in source.pairs if pair[1] not in missing]
    facts = _read_all(_sample(readable, sample), workers if sample is None else 1)
    report.checked = len(facts)
    report.facts = facts
    for fact in facts:
        report.problems += pair_problems(fact, source.rules)
    report.class_pixels, report.ignored_pixels = _class_pixels(facts, source.rules)
    return report


def _setting_problem(kind: str, found: str, fix: str) -> Problem:
    return Problem(kind, 'config', found, fix)


def _ignore_index_problems(cfg: Config) -> list[Problem]:
    """The heads' loss and the evaluators skip the same label (mmseg's default: 255 each)."""
    skipped = {
        f'{name}.ignore_index': head.get('ignore_index', 255)
        for name, head in _heads(cfg.get('model') or {})
    }
    for key in ('val_evaluator', 'test_evaluator'):
        evaluators = cfg.get(key) or []
        for index, evaluator in enumerate(
            evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]
        ):
            if evaluator.get('type') == 'IoUMetric':
                where = key if isinstance(cfg.get(key), dict) else f'{key}[{index}]'
                skipped[f'{where}.ignore_index'] = evaluator.get('ignore_index', 255)
    if len(set(skipped.values())) <= 1:
        return []
    listed = ', '.join(f'{name}={value}' for name, value in skipped.items())
    return [
        _setting_problem(
            'ignore-index',
            f'the loss and the metric skip different labels: {listed}',
            'give every head and IoUMetric the same ignore_index',
        )
    ]


def _reduce_zero_label_problem(cfg: Config, key: str, dataset) -> list[Problem]:
    """mmseg asserts mid-run when LoadAnnotations and the data set disagree on it."""
    pipeline = _leaf_dataset_cfg(cfg[key]['dataset']).get('pipeline') or []
    for step in pipeline:
        if not isinstance(step, dict) or step.get('type') != 'LoadAnnotations':
            continue
        value = step.get('reduce_zero_label')
        if value is not None and bool(value) != bool(dataset.reduce_zero_label):
            return [
                _setting_problem(
                    'reduce-zero-label',
                    f'{key}: LoadAnnotations has reduce_zero_label={value} but the data set '
                    f'{dataset.reduce_zero_label}',
                    'set it once, on the data set, and drop it from LoadAnnotations',
                )
            ]
    return []


def shared_setting_problems(cfg: Config, key: str) -> list[Problem]:
    """The settings a data set and the model must share agree (no file is read).

    The data set's class list and every head's ``num_classes``; the label skipped by the
    heads' loss and by ``IoUMetric``; ``reduce_zero_label`` of the data set and of its
    ``LoadAnnotations``.
    """
    problems = []
    counts = {
        f'{name}.num_classes': head.get('num_classes')
        for name, head in _heads(cfg.get('model') or {})
    }
    if len(set(counts.values())) > 1:
        listed = ', '.join(f'{name}={count}' for name, count in counts.items())
        problems.append(
            _setting_problem(
                'num-classes',
                f'the heads disagree: {listed}',
                'give every head the same num_classes',
            )
        )
    dataset = _lazy_dataset(cfg, key)
    classes = dataset.metainfo.get('classes')
    count = _decode_head(cfg).get('num_classes')
    if classes and count is not None and len(classes) != count:
        problems.append(
            _setting_problem(
                'num-classes',
                f'{key}.dataset lists {len(classes)} classes but '
                f'model.decode_head.num_classes={count}',
                f'set num_classes={len(classes)} in every head, or change the class list',
            )
        )
    return problems + _ignore_index_problems(cfg) + _reduce_zero_label_problem(cfg, key, dataset)


def sampled_split_check(
    cfg: Config, key: str, sample: int = SAMPLE_SIZE
) -> tuple[list[Problem], int]:
    """The quick version for ``--check``: every pair's annotation exists, a sample is read.

    Returns:
        the problems and how many pairs were read.
    """
    report = check_split(split_source(cfg, key), sample=sample)
    return report.problems + shared_setting_problems(cfg, key), report.checked


def sampled_split_problems(cfg: Config, key: str, sample: int = SAMPLE_SIZE) -> list[Problem]:
    """The problems of :func:`sampled_split_check`."""
    return sampled_split_check(cfg, key, sample)[0]


def problems_line(key: str, problems: list[Problem], sampled: int | None = None) -> str:
    """The first problem of a split as one line, with where to see the others.

    Out-of-range labels in several annotations are summed up (``in 39 of the 48
    annotations sampled`` when ``sampled`` is given); "more" counts the other problems.
    """
    line = f'{key}: {problems[0]}'
    out_of_range = [problem for problem in problems if problem.labels]
    summed = len(out_of_range) > 1
    if summed:
        labels = sorted({label for problem in out_of_range for label in problem.labels})
        of = f' of the {sampled} annotations sampled' if sampled else ' annotations'
        line += (
            f'; labels {", ".join(map(str, labels))} are out of range in {len(out_of_range)}{of}'
        )
    others = [problem for problem in problems[1:] if not (summed and problem.labels)]
    if others:
        line += f' ({len(others)} more; tools/analysis/check_dataset.py lists them all)'
    elif summed:
        line += ' (tools/analysis/check_dataset.py lists them all)'
    return line
