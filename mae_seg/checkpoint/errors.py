"""Errors a user can cause with a checkpoint: each message names the input and the fix."""


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, unsafe, or not what was expected."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist (an ``OSError`` too, as mmengine raises)."""


class ConversionError(CheckpointError):
    """A state dict is not an MAE ViT encoder in a layout the converter knows."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's tensors do not fit the model that would load them."""
