"""The errors a user can cause, in one place: each message names the input and the fix.

Command lines turn these into one line on stderr and exit status 2 (1 for a run that
stopped, :class:`NonFiniteLossError`).
"""

__all__ = [
    'CheckpointError',
    'CheckpointMismatchError',
    'CheckpointNotFoundError',
    'ColourMaskError',
    'ConfigError',
    'ConversionError',
    'CurvesError',
    'NonFiniteLossError',
]


class ConfigError(ValueError):
    """A config, path or option that cannot run as given."""


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, unsafe, or not what was expected."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist (an ``OSError`` too, as mmengine raises)."""


class ConversionError(CheckpointError):
    """A state dict is not an MAE ViT encoder in a layout the converter knows."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's tensors do not fit the model that would load them."""


class ColourMaskError(ValueError):
    """A class-colour file or a colour mask that cannot be converted to class indices."""


class NonFiniteLossError(RuntimeError):
    """Training stopped because its loss was NaN or infinite; the message says where."""


class CurvesError(ValueError):
    """A work directory or scalar log whose curves cannot be plotted."""
