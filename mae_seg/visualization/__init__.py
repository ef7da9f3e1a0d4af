"""Figures of a run that mmengine's and mmseg's visualizers do not draw."""

from .curves import (
    RunScalars,
    TrainingCurves,
    join_runs,
    load_curves,
    plot_curves,
    read_scalars,
    scalar_logs,
)

__all__ = [
    'RunScalars',
    'TrainingCurves',
    'join_runs',
    'load_curves',
    'plot_curves',
    'read_scalars',
    'scalar_logs',
]
