"""The quick start's pieces: a shapes data set, a tiny MAE checkpoint, the report."""

from .mae_checkpoint import official_mae_state_dict, save_official_mae_checkpoint
from .report import chance_miou, class_table, latest_run, write_report
from .shapes import CLASSES, ShapesSpec, draw_sample, make_shapes_dataset

__all__ = [
    'CLASSES',
    'ShapesSpec',
    'chance_miou',
    'class_table',
    'draw_sample',
    'latest_run',
    'make_shapes_dataset',
    'official_mae_state_dict',
    'save_official_mae_checkpoint',
    'write_report',
]
