"""Training curves of a run: loss, lr and a validation metric from mmengine's scalar log.

mmengine's ``LocalVisBackend`` (in the ``visualizer`` of mmseg's ``default_runtime.py``)
appends one JSON object a line to ``WORK_DIR/<timestamp>/vis_data/scalars.json``:
``LoggerHook`` writes a training line every ``default_hooks.logger.interval`` iterations
(``loss``, each loss term such as ``decode.loss_ce``, ``lr``, ``base_lr``, ``time``, ``iter``,
``step``) and a validation line after each validation (``aAcc``, ``mIoU``, ``mAcc``, ``time``,
``step``; no ``iter``). ``step`` is the training iteration of both lines when the logger
logs by iteration (``log_metric_by_epoch=False``, as mmseg's configs set it).

Every start of ``tools/train.py`` in a work directory makes a new ``<timestamp>`` folder, so
a resumed or restarted run leaves its log in several of them; :func:`load_curves` joins them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CurvesError
from ..io.writing import atomic_output

__all__ = [
    'RunScalars',
    'TrainingCurves',
    'join_runs',
    'load_curves',
    'plot_curves',
    'read_scalars',
    'scalar_logs',
]

#: mmengine's run folder name, ``time.strftime('%Y%m%d_%H%M%S')``: sorting by name is by time.
_TIMESTAMP = re.compile(r'\d{8}_\d{6}')
_SCALARS = Path('vis_data') / 'scalars.json'
#: Keys of a line that are positions or bookkeeping (timings, memory), not curves drawn here.
_NOT_CURVES = frozenset({'step', 'iter', 'epoch', 'time', 'data_time', 'memory'})

Series = list[tuple[int, float]]


@dataclass(frozen=True)
class RunScalars:
    """The scalars of one ``scalars.json``, each as ``{name: [(step, value), ...]}``.

    Attributes:
        path: the ``scalars.json`` read.
        train: training lines' scalars (``loss``, ``lr``, ...), in file order.
        val: validation lines' scalars (``mIoU``, ``aAcc``, ...), in file order.
    """

    path: Path
    train: dict[str, Series] = field(default_factory=dict)
    val: dict[str, Series] = field(default_factory=dict)

    @property
    def first_step(self) -> int | None:
        """The smallest step of any line, ``None`` for a log without lines."""
        steps = [
            step for series in (*self.train.values(), *self.val.values()) for step, _ in series
        ]
        return min(steps, default=None)


@dataclass(frozen=True)
class TrainingCurves:
    """The joined curves of a work directory's runs, each series sorted by step.

    Attributes:
        sources: the ``scalars.json`` files joined, oldest first.
        train: ``{name: [(iteration, value), ...]}`` of the training lines.
        val: ``{name: [(iteration, value), ...]}`` of the validation lines.
    """

    sources: tuple[Path, ...]
    train: dict[str, Series]
    val: dict[str, Series]

    @property
    def loss_names(self) -> list[str]:
        """``loss`` (mmengine's sum of the terms) first, then the terms (``decode.loss_ce``...)."""
        names = [name for name in self.train if 'loss' in name.rsplit('.', 1)[-1]]
        return sorted(names, key=lambda name: (name != 'loss', name))

    @property
    def lr_names(self) -> list[str]:
        """``lr`` (first parameter group's) and each optimizer's ``<name>.lr``; not ``base_lr``."""
        return sorted(name for name in self.train if name == 'lr' or name.endswith('.lr'))

    @property
    def iterations(self) -> tuple[int, int]:
        """First and last logged training iteration."""
        steps = [step for name in self.loss_names for step, _ in self.train[name]]
        return min(steps), max(steps)

    def validations(self, metric: str = 'mIoU') -> Series:
        """``[(iteration, value), ...]`` of ``metric``; empty for a run without validation.

        Raises:
            CurvesError: there are validation lines, but none with ``metric``.
        """
        if not self.val or metric in self.val:
            return self.val.get(metric, [])
        raise CurvesError(
            f'the validation lines of {_names(self.sources)} have no {metric!r} '
            f'(they have {", ".join(sorted(self.val))}); choose one of those'
        )

    def summary(self, metric: str = 'mIoU') -> str:
        """What a plot of these curves holds, in one line (without the file name)."""
        first, last = self.iterations
        runs = f'{len(self.sources)} run' + ('s' if len(self.sources) > 1 else '')
        lr = ', lr' if self.lr_names else ''
        panels = f'loss ({", ".join(self.loss_names)}){lr}'
        validations = self.validations(metric)
        if not validations:
            return (
                f'{panels} over iterations {first}-{last} from {runs}; '
                f'no validation in the log, so no {metric} panel'
            )
        step, value = validations[-1]
        count = f'{len(validations)} validation' + ('s' if len(validations) > 1 else '')
        return (
            f'{panels} and val {metric} over iterations {first}-{last} from {runs}; '
            f'{count}, last {metric} {value:.2f} at iteration {step}'
        )


def _names(paths: Sequence[Path]) -> str:
    return ', '.join(str(path) for path in paths)


def scalar_logs(work_dir: str | Path) -> list[Path]:
    """The ``<timestamp>/vis_data/scalars.json`` files of a work directory, oldest first.

    ``work_dir`` may also be one ``<timestamp>`` folder. Folders whose name is not an mmengine
    timestamp (``--show-dir`` output, for instance) are not runs and are left out; so are
    timestamp folders without a ``scalars.json`` (``tools/test.py`` runs write none).

    Raises:
        CurvesError: ``work_dir`` does not exist, is not a directory, or holds no scalar log.
    """
    work_dir = Path(work_dir)
    if not work_dir.exists():
        raise CurvesError(f'{work_dir} does not exist; give the --work-dir of a training run')
    if not work_dir.is_dir():
        raise CurvesError(f'{work_dir} is not a directory; give the --work-dir of a training run')
    if (work_dir / _SCALARS).is_file():
        return [work_dir / _SCALARS]
    runs = sorted(p for p in work_dir.iterdir() if p.is_dir() and _TIMESTAMP.fullmatch(p.name))
    logs = [run / _SCALARS for run in runs if (run / _SCALARS).is_file()]
    if not logs:
        raise CurvesError(
            f'{work_dir} has no <timestamp>/{_SCALARS.as_posix()}; give the --work-dir of a '
            'training run whose config keeps a LocalVisBackend in visualizer.vis_backends '
            "(mmseg's default_runtime.py has one)"
        )
    return logs


def read_scalars(path: str | Path) -> RunScalars:
    """Read one ``scalars.json``: lines with ``iter`` are training lines, the others validation.

    Values that are not numbers (mmengine logs only numbers, but a custom hook may log
    more) are left out; ``NaN`` stays (a non-finite loss shows as a gap).

    Raises:
        CurvesError: the file cannot be read, or a line is blank, not a JSON object, or has
            no integer ``step``; the message names the file, the line and the fix.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding='utf-8').splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise CurvesError(f'{path} cannot be read: {error}') from error
    run = RunScalars(path)
    for number, line in enumerate(lines, start=1):
        record = _parse_line(path, number, line)
        series = run.train if 'iter' in record else run.val
        for name, value in record.items():
            if name not in _NOT_CURVES and _is_number(value):
                series.setdefault(name, []).append((record['step'], float(value)))
    return run


def _parse_line(path: Path, number: int, line: str) -> dict:
    # A run killed while logging leaves a partial last line; naming it lets the user cut it.
    fix = f'remove line {number} of {path} (a run killed while writing leaves a partial line)'
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        what = 'blank' if not line.strip() else f'not JSON ({line[:40]!r})'
        raise CurvesError(f'line {number} of {path} is {what}; {fix}') from None
    if not isinstance(record, dict) or not _is_integer(record.get('step')):
        raise CurvesError(f'line {number} of {path} is not an mmengine scalar line; {fix}')
    return record


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def join_runs(runs: Sequence[RunScalars]) -> TrainingCurves:
    """Join the runs of a work directory, oldest first, into one set of curves.

    A later run replaces every point of the earlier ones from its first logged iteration on.
    A resumed run starts from the last checkpoint, so the iterations an interrupted run
    logged after that checkpoint were trained again and their weights thrown away; a run
    restarted from scratch replaces all of the earlier training. Either way the curves
    shown are those of the training that made the work directory's latest checkpoints.

    Raises:
        CurvesError: no run logged a training loss.
    """
    train: dict[str, dict[int, float]] = {}
    val: dict[str, dict[int, float]] = {}
    for run in runs:
        start = run.first_step
        if start is None:
            continue  # a run that stopped before its first logging interval: nothing to join
        for joined, series in ((train, run.train), (val, run.val)):
            for points in joined.values():
                for step in [step for step in points if step >= start]:
                    del points[step]
            for name, values in series.items():
                joined.setdefault(name, {}).update(values)
    curves = TrainingCurves(
        sources=tuple(run.path for run in runs),
        train={name: sorted(points.items()) for name, points in train.items() if points},
        val={name: sorted(points.items()) for name, points in val.items() if points},
    )
    if not curves.loss_names:
        raise CurvesError(
            f'{_names(curves.sources)} hold no training loss: the runs stopped before their '
            'first logging interval (default_hooks.logger.interval); train longer or log more '
            'often'
        )
    return curves


def load_curves(work_dir: str | Path) -> TrainingCurves:
    """The joined curves of every run in ``work_dir`` (see :func:`join_runs`).

    Raises:
        CurvesError: see :func:`scalar_logs`, :func:`read_scalars` and :func:`join_runs`.
    """
    return join_runs([read_scalars(path) for path in scalar_logs(work_dir)])


def plot_curves(
    curves: TrainingCurves, out_path: str | Path, metric: str = 'mIoU', title: str = ''
) -> Path:
    """Plot loss (every term), lr and validation ``metric`` against the iteration, one PNG.

    The metric panel is left out for a run without validation. The PNG is written whole or
    not at all. Drawn on a bare matplotlib ``Figure`` (Agg), so pyplot's global backend and
    figure list stay as the caller left them.

    Args:
        curves: from :func:`load_curves`.
        out_path: the ``.png`` to write; its folder is made if missing.
        metric: the validation scalar of the last panel.
        title: the figure's title.

    Raises:
        CurvesError: ``out_path`` is a directory or not a ``.png``, or ``metric`` is not among
            the validation scalars.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FormatStrFormatter

    out_path = Path(out_path)
    if out_path.is_dir() or out_path.suffix.lower() != '.png':
        raise CurvesError(f'output {out_path} is not a .png file name; give one such as curves.png')
    validations = curves.validations(metric)
    panels = 1 + bool(curves.lr_names) + bool(validations)
    figure = Figure(figsize=(5 * panels, 4), dpi=100, layout='tight')
    axes = iter(figure.subplots(1, panels, sharex=True, squeeze=False)[0])
    loss_axis = next(axes)
    for name in curves.loss_names:
        loss_axis.plot(*zip(*curves.train[name]), label=name, lw=1.6 if name == 'loss' else 0.9)
    loss_axis.set(xlabel='iteration', ylabel='loss', title='training loss')
    loss_axis.legend(fontsize=8)
    if curves.lr_names:
        lr_axis = next(axes)
        for name in curves.lr_names:
            lr_axis.plot(*zip(*curves.train[name]), label=name)
        # mmengine logs the lr of each optimizer's first parameter group only.
        lr_axis.set(xlabel='iteration', ylabel='lr', title='learning rate (first parameter group)')
        # Exponent on every tick: matplotlib's shared offset text would sit on the title.
        lr_axis.yaxis.set_major_formatter(FormatStrFormatter('%.1e'))
        if len(curves.lr_names) > 1:
            lr_axis.legend(fontsize=8)
    if validations:
        metric_axis = next(axes)
        metric_axis.plot(*zip(*validations), marker='o', color='tab:green')
        metric_axis.margins(y=0.15)  # room for the label of the last value
        step, value = validations[-1]
        if math.isfinite(value):
            metric_axis.annotate(
                f'{value:.2f}', (step, value), xytext=(0, 6), textcoords='offset points',
                ha='center', fontsize=8,
            )  # fmt: skip
        metric_axis.set(xlabel='iteration', ylabel=metric, title=f'validation {metric}')
    for axis in figure.axes:
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    with atomic_output(out_path) as temporary:
        figure.savefig(temporary, format='png')
    return out_path
