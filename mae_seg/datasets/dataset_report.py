"""The full data set check of a config: what ``tools/analysis/check_dataset.py`` prints."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mmengine.config import Config
from mmengine.registry import init_default_scope

from ..io.writing import atomic_output
from .dataset_check import (
    SPLIT_KEYS,
    SplitReport,
    check_split,
    shared_setting_problems,
    split_source,
)
from .dataset_figures import plot_class_pixels, write_overlays
from .label_rules import Problem

__all__ = ['DatasetReport', 'check_dataset', 'split_summary']


@dataclass
class DatasetReport:
    """Every split's report, the lines to print, the problems and the files written."""

    splits: list[SplitReport] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    written: list[str] = field(default_factory=list)


def _size_range(report: SplitReport) -> str:
    sizes = [fact.image_size for fact in report.facts if fact.image_size]
    if not sizes:
        return 'no readable image'
    widths, heights = zip(*sizes)
    return f'images {min(widths)}-{max(widths)} wide, {min(heights)}-{max(heights)} high (pixels)'


def split_summary(report: SplitReport) -> list[str]:
    """Lines describing one split: pairs, annotation modes, labels, class pixel table."""
    source = report.source
    modes = Counter(fact.seg_mode for fact in report.facts if fact.seg_mode)
    unreadable = sum(1 for fact in report.facts if fact.image_error or fact.seg_error)
    kinds = Counter(problem.kind for problem in report.problems)
    lines = [
        f'{source.key}: {len(source.pairs)} images, {report.checked} pairs read, '
        f'{kinds["annotation-missing"]} annotations missing, {unreadable} unreadable, '
        f'{len(source.orphans)} annotations without image',
        f'  annotation modes: {", ".join(f"{m} x{n}" for m, n in modes.most_common()) or "-"}; '
        f'{_size_range(report)}',
        f'  labels read with {source.rules.describe()}',
    ]
    pixels = report.class_pixels
    if pixels is None or not report.checked:
        return lines
    names = source.classes or tuple(str(index) for index in range(len(pixels)))
    labelled = max(int(pixels.sum()), 1)
    width = max(len('class'), *(len(str(name)) for name in names))
    lines.append(f'  {"label":>5}  {"class":<{width}}  {"pixels":>12}  share of labelled pixels')
    for label, (name, count) in enumerate(zip(names, pixels)):
        lines.append(f'  {label:>5}  {name:<{width}}  {int(count):>12}  {count / labelled:>7.2%}')
    ignored_share = report.ignored_pixels / max(labelled + report.ignored_pixels, 1)
    lines.append(
        f'  {source.rules.ignore_index:>5}  {"(ignored)":<{width}}  '
        f'{report.ignored_pixels:>12}  ({ignored_share:.2%} of all pixels)'
    )
    if report.absent_classes:
        lines.append(f'  classes that never occur: {", ".join(report.absent_classes)}')
    return lines


def check_dataset(
    cfg: Config,
    out_dir: str | Path | None = None,
    keys: tuple[str, ...] = SPLIT_KEYS,
    workers: int | None = None,
) -> DatasetReport:
    """Read every pair of each dataloader of ``cfg`` and report.

    Args:
        cfg: a segmentation config.
        out_dir: where the class-frequency plots, overlays and ``problems.txt`` go
            (None: nothing written).
        keys: the dataloaders to check; a loader the config lacks is skipped, and one that
            shares its data set with a checked one (``test_dataloader = val_dataloader``)
            is read once.
        workers: processes reading pairs (default: the CPUs available).
    """
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    result = DatasetReport()
    seen: list[dict] = []
    for key in keys:
        loader = cfg.get(key)
        if not loader or 'dataset' not in loader or loader['dataset'] in seen:
            continue
        seen.append(loader['dataset'])
        try:
            source = split_source(cfg, key)
        except FileNotFoundError as error:
            missing = error.filename or str(error)
            result.problems.append(
                Problem('split-missing', key, f'{missing} does not exist', 'fix data_root')
            )
            continue
        if not source.pairs:
            result.problems.append(
                Problem(
                    'split-empty',
                    key,
                    'no images found',
                    'check data_root, data_prefix.img_path and img_suffix',
                )
            )
            continue
        report = check_split(source, workers=workers)
        result.splits.append(report)
        result.lines += split_summary(report)
        result.problems += report.problems
        if len(result.splits) == 1:  # the model's settings, named once
            result.problems += shared_setting_problems(cfg, key)
        if out_dir is not None:
            result.written += _write_figures(report, Path(out_dir))
    if out_dir is not None and result.problems:
        path = Path(out_dir) / 'problems.txt'
        with atomic_output(path) as temporary:
            temporary.write_text(''.join(f'{problem}\n' for problem in result.problems))
        result.written.append(str(path))
    return result


def _write_figures(report: SplitReport, out_dir: Path) -> list[str]:
    source = report.source
    split = source.key.replace('_dataloader', '')
    written = []
    if report.class_pixels is not None and report.checked:
        names = source.classes or [str(index) for index in range(len(report.class_pixels))]
        path = out_dir / f'class_pixels_{split}.png'
        title = f'{source.key}: class pixels in {report.checked} annotations'
        plot_class_pixels(names, report.class_pixels, path, title)
        written.append(str(path))
    path = out_dir / f'overlays_{split}.png'
    if write_overlays(report.facts, source.rules, source.palette, path):
        written.append(str(path))
    return written
