"""Checkpoint I/O, the lowest layer: safe loading, download cache, formats, atomic writing,
and the rule for whether a state dict fits a model. It imports nothing else of mae_seg but
:mod:`mae_seg.errors`."""

from .download import cached_path, default_cache_dir, download_checkpoint
from .fit import check_state_dict_fits
from .loading import extract_state_dict, load_checkpoint_file
from .summary import summarize_keys, summarize_modules
from .writing import atomic_output, check_output_path, save_checkpoint_file

__all__ = [
    'atomic_output',
    'cached_path',
    'check_output_path',
    'check_state_dict_fits',
    'default_cache_dir',
    'download_checkpoint',
    'extract_state_dict',
    'load_checkpoint_file',
    'save_checkpoint_file',
    'summarize_keys',
    'summarize_modules',
]
