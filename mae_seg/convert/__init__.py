"""Checkpoint layouts: detect the layout of an MAE encoder's weights (official, timm,
mmpretrain, mmseg, transformers), map its keys to MAEViT's, infer its architecture, read the
Hugging Face hub's files, convert and save.

:mod:`mae_seg.convert.verify` (which builds the model and timm's) is imported on its own.
"""

from .architecture import EncoderArchitecture, infer_architecture, resolve_num_heads
from .convert import Conversion, convert_checkpoint, convert_state_dict, save_conversion
from .hub import HubConfig, hub_weights_file, read_hub_config
from .layouts import (
    LAYOUTS,
    ConvertedState,
    describe_layout,
    detect_layout,
    mae_vit_to_timm,
    mmpretrain_to_mae_vit,
    mmseg_to_mae_vit,
    official_to_mae_vit,
    transformers_to_mae_vit,
)

__all__ = [
    'LAYOUTS',
    'Conversion',
    'ConvertedState',
    'EncoderArchitecture',
    'HubConfig',
    'convert_checkpoint',
    'convert_state_dict',
    'describe_layout',
    'detect_layout',
    'hub_weights_file',
    'infer_architecture',
    'mae_vit_to_timm',
    'mmpretrain_to_mae_vit',
    'mmseg_to_mae_vit',
    'official_to_mae_vit',
    'read_hub_config',
    'resolve_num_heads',
    'save_conversion',
    'transformers_to_mae_vit',
]
