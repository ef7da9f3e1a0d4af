"""Checkpoint layouts: safe loading, download cache, detection and conversion to MAEViT names.

:mod:`mae_seg.checkpoint.verify` (which builds models) is imported on its own.
"""

from .architecture import EncoderArchitecture, infer_architecture, resolve_num_heads
from .convert import Conversion, convert_checkpoint, convert_state_dict, save_conversion
from .download import cached_path, default_cache_dir, download_checkpoint
from .errors import CheckpointError, CheckpointNotFoundError, ConversionError
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
from .loading import extract_state_dict, load_checkpoint_file
from .summary import summarize_keys, summarize_modules
from .writing import atomic_output, check_output_path, save_checkpoint_file

__all__ = [
    'LAYOUTS',
    'CheckpointError',
    'CheckpointNotFoundError',
    'Conversion',
    'ConversionError',
    'ConvertedState',
    'EncoderArchitecture',
    'HubConfig',
    'atomic_output',
    'cached_path',
    'check_output_path',
    'convert_checkpoint',
    'convert_state_dict',
    'default_cache_dir',
    'describe_layout',
    'detect_layout',
    'download_checkpoint',
    'extract_state_dict',
    'hub_weights_file',
    'infer_architecture',
    'load_checkpoint_file',
    'mae_vit_to_timm',
    'mmpretrain_to_mae_vit',
    'mmseg_to_mae_vit',
    'official_to_mae_vit',
    'read_hub_config',
    'resolve_num_heads',
    'save_checkpoint_file',
    'save_conversion',
    'summarize_keys',
    'summarize_modules',
    'transformers_to_mae_vit',
]
