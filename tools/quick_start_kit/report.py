"""The quick start's results: mIoU table and training curves from its runs' work directories."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from mae_seg.visualization import load_curves, plot_curves

__all__ = ['chance_miou', 'class_table', 'latest_run', 'write_report']


def latest_run(work_dir: str | Path) -> Path:
    """Newest ``<timestamp>`` directory mmengine made in ``work_dir``.

    Raises:
        FileNotFoundError: ``work_dir`` holds no run.
    """
    runs = sorted(p for p in Path(work_dir).glob('[0-9]*_[0-9]*') if p.is_dir())
    if not runs:
        raise FileNotFoundError(f'no mmengine run (<timestamp>/) in {work_dir}')
    return runs[-1]


def class_table(log_path: str | Path) -> str:
    """The last per-class IoU table that mmseg's ``IoUMetric`` wrote into a log."""
    lines = Path(log_path).read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line.endswith('per class results:')]
    if not starts:
        raise ValueError(f'{log_path} has no per-class results')
    table = []
    for line in lines[starts[-1] + 1 :]:
        if line.startswith(('+', '|')):
            table.append(line)
        elif table:
            break
    return '\n'.join(table)


def _test_metrics(run: Path) -> dict:
    return json.loads((run / f'{run.name}.json').read_text())


def chance_miou(label_dir: str | Path, num_classes: int) -> float:
    """mIoU (%) of a prediction drawn uniformly at random from the classes.

    With ``p_c`` the share of labelled pixels of class ``c`` and ``K`` classes, class ``c``
    has IoU ``(p_c / K) / (p_c + 1 / K - p_c / K)`` in expectation.
    Labels are ADE20K PNGs: 0 is ignored, ``k`` is class ``k - 1``.
    """
    counts = np.zeros(num_classes + 1)
    for path in sorted(Path(label_dir).glob('*.png')):
        labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        counts += np.bincount(labels.ravel(), minlength=num_classes + 1)[: num_classes + 1]
    shares = counts[1:] / counts[1:].sum()
    k = num_classes
    ious = (shares / k) / (shares + 1 / k - shares / k)
    return float(100 * ious[shares > 0].mean())


def write_report(work_dir: str | Path, num_classes: int) -> str:
    """Write ``miou_table.txt`` and ``curves.png`` into ``work_dir``; return the summary.

    Expects the quick start's layout: ``train/``, ``test/`` and ``test_tta/`` work
    directories and ``data/ADEChallengeData2016``.
    """
    work_dir = Path(work_dir)
    single = latest_run(work_dir / 'test')
    multi = latest_run(work_dir / 'test_tta')
    label_dir = work_dir / 'data' / 'ADEChallengeData2016' / 'annotations' / 'validation'
    chance = chance_miou(label_dir, num_classes)
    summary = (
        f'mIoU single-scale: {_test_metrics(single)["mIoU"]:.2f}\n'
        f'mIoU multi-scale + flip: {_test_metrics(multi)["mIoU"]:.2f}\n'
        f'chance (uniformly random prediction): {chance:.2f}'
    )
    text = (
        f'{summary}\n\nsingle-scale, per class:\n{class_table(single / f"{single.name}.log")}\n'
        f'\nmulti-scale + flip, per class:\n{class_table(multi / f"{multi.name}.log")}\n'
    )
    (work_dir / 'miou_table.txt').write_text(text)
    plot_curves(
        load_curves(work_dir / 'train'),
        work_dir / 'curves.png',
        title='quick start: tiny MAE ViT + UPerNet on shapes',
    )
    return summary
