"""Loading checkpoint files without executing code from them."""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from typing import Any

import torch
from mmengine import fileio


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, unsafe, or not what was expected."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist (an ``OSError`` too, as mmengine raises)."""


def load_checkpoint_file(path: str, map_location: str = 'cpu') -> Any:
    """Load a ``.pth`` file with ``weights_only=True`` from a path or any mmengine backend.

    Args:
        path: local path, ``http(s)://`` URL, or another URI mmengine's fileio reads.
        map_location: where tensors go.

    Raises:
        CheckpointError: the file is missing or empty, is not a torch checkpoint, or its
            unpickling would need more than tensors and plain containers.
    """
    try:
        payload = fileio.get(path)
    except FileNotFoundError as error:
        raise CheckpointNotFoundError(f'checkpoint {path} does not exist') from error
    except OSError as error:
        raise CheckpointError(f'checkpoint {path} cannot be read: {error}') from error
    if not payload:
        raise CheckpointError(f'checkpoint {path} is empty')
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ''
        raise CheckpointError(
            f'checkpoint {path} was refused by the safe loader (weights_only=True); it holds '
            f'objects other than tensors and plain containers: {first_line}'
        ) from error
    except Exception as error:  # torch raises several types for corrupt archives
        raise CheckpointError(
            f'checkpoint {path} is not a readable torch checkpoint '
            f'({type(error).__name__}: {error})'
        ) from error


def extract_state_dict(checkpoint: Any, prefix: str = '') -> dict[str, torch.Tensor]:
    """The tensor mapping inside a checkpoint, optionally restricted to one submodule.

    Looks in ``state_dict`` (mmengine, mmpretrain), ``model`` (official MAE, DeiT) or the
    top level, strips a DDP ``module.`` prefix, and keeps only keys under ``prefix`` (with
    the prefix removed) when one is given, like mmengine's ``Pretrained(prefix=...)``.

    Raises:
        CheckpointError: nothing in it is a mapping of names to tensors, or no key has
            ``prefix``.
    """
    state = checkpoint
    if isinstance(state, Mapping):
        for key in ('state_dict', 'model'):
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping) or not any(
        isinstance(value, torch.Tensor) for value in state.values()
    ):
        raise CheckpointError('the checkpoint holds no state dict (a mapping of names to tensors)')
    state = {
        (key[len('module.') :] if key.startswith('module.') else key): value
        for key, value in state.items()
        if isinstance(value, torch.Tensor)
    }
    if prefix:
        if not prefix.endswith('.'):
            prefix += '.'
        state = {
            key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)
        }
        if not state:
            raise CheckpointError(f'the checkpoint has no keys under prefix {prefix!r}')
    return state
