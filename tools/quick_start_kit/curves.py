"""Training curves from the ``vis_data/scalars.json`` that mmengine's ``LocalVisBackend`` writes."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ['plot_training_curves', 'read_scalars']


def read_scalars(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of a ``scalars.json`` as ``{name: [(step, value), ...]}``.

    Each line is one logging event: training lines carry ``loss``, ``lr``, ... and
    validation lines ``mIoU``, ``aAcc``, ...; ``step`` is the iteration of both.
    """
    series: dict[str, list[tuple[int, float]]] = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        step = int(record.get('step', record.get('iter', 0)))
        for name, value in record.items():
            if name not in ('step', 'iter', 'epoch') and isinstance(value, (int, float)):
                series.setdefault(name, []).append((step, float(value)))
    return series


def plot_training_curves(
    scalars_path: str | Path,
    out_path: str | Path,
    loss_key: str = 'loss',
    metric_key: str = 'mIoU',
    title: str = '',
) -> Path:
    """Plot the training loss and the validation metric against the iteration, side by side.

    Args:
        scalars_path: a ``vis_data/scalars.json`` of a training run.
        out_path: the PNG to write.
        loss_key: scalar for the left panel.
        metric_key: scalar for the right panel.
        title: figure title.

    Raises:
        ValueError: the file has no ``loss_key`` values.
    """
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    series = read_scalars(scalars_path)
    if not series.get(loss_key):
        raise ValueError(f'{scalars_path} has no {loss_key!r} values to plot')
    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(10, 4))
    steps, values = zip(*series[loss_key])
    loss_axis.plot(steps, values, color='tab:blue')
    loss_axis.set(xlabel='iteration', ylabel=loss_key, title=f'training {loss_key}')
    if series.get(metric_key):
        steps, values = zip(*series[metric_key])
        metric_axis.plot(steps, values, marker='o', color='tab:green')
    metric_axis.set(xlabel='iteration', ylabel=metric_key, title=f'validation {metric_key}')
    for axis in (loss_axis, metric_axis):
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path, dpi=100)
    plt.close(figure)
    return out_path
