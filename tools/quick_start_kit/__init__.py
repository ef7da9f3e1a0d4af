"""The quick start's pieces, beside ``tools/quick_start.py``: a shapes data set (ADE20K or
own-data folder layout), a tiny MAE checkpoint, the report and its training curves."""

from .folder_dataset import (
    FOLDER_CLASSES,
    FOLDER_PALETTE,
    make_folder_dataset,
    plant_faults,
    write_colour_masks,
)
from .mae_checkpoint import official_mae_state_dict, save_official_mae_checkpoint
from .report import chance_miou, class_table, latest_run, write_report
from .shapes import CLASSES, ShapesSpec, draw_sample, make_shapes_dataset

__all__ = [
    'CLASSES',
    'FOLDER_CLASSES',
    'FOLDER_PALETTE',
    'ShapesSpec',
    'chance_miou',
    'class_table',
    'draw_sample',
    'latest_run',
    'make_folder_dataset',
    'make_shapes_dataset',
    'official_mae_state_dict',
    'plant_faults',
    'save_official_mae_checkpoint',
    'write_colour_masks',
    'write_report',
]
