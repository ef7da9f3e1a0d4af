"""Checkpoint layouts: safe loading, key summaries (and, later, detection and conversion)."""

from .loading import (
    CheckpointError,
    CheckpointNotFoundError,
    extract_state_dict,
    load_checkpoint_file,
)
from .summary import summarize_keys

__all__ = [
    'CheckpointError',
    'CheckpointNotFoundError',
    'extract_state_dict',
    'load_checkpoint_file',
    'summarize_keys',
]
