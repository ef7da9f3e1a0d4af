"""Loading checkpoint files without executing code from them."""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import os
import pickle
import re
from collections.abc import Mapping
from typing import Any

import torch
from mmengine import fileio
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import load_file as load_safetensors_file

from ..errors import CheckpointError, CheckpointNotFoundError
from .download import download_checkpoint, is_url
from .formats import sniff_format

# Training scripts of the official MAE and DeiT save their argparse options beside the
# weights; a Namespace only holds attributes, and what is inside it is still checked.
_SAFE_EXTRA_GLOBALS = [argparse.Namespace]
_TORCH_LOAD_HAS_MMAP = 'mmap' in inspect.signature(torch.load).parameters  # torch >= 2.1


def load_checkpoint_file(
    path: str,
    map_location: str = 'cpu',
    cache_dir: str | os.PathLike | None = None,
) -> Any:
    """Load a torch or safetensors checkpoint without running code from it.

    Torch files are read with ``weights_only=True`` (tensors, plain containers and
    ``argparse.Namespace`` only); ``http(s)://`` URLs are downloaded once into the cache
    (see :func:`~mae_seg.io.download.download_checkpoint`).

    Args:
        path: local path, ``http(s)://`` URL, or another URI mmengine's fileio reads.
        map_location: where tensors go.
        cache_dir: cache root for URLs; ``${XDG_CACHE_HOME:-~/.cache}/mae_seg/checkpoints``
            if not given.

    Raises:
        CheckpointError: the file is missing or empty, is not a torch or safetensors file,
            or its unpickling would need more than tensors and plain containers.
    """
    source = path
    if is_url(path):
        path = str(download_checkpoint(path, cache_dir))
    local = os.path.isfile(path)
    try:
        payload = None if local else fileio.get(path)
        head = _read_head(path) if local else payload[:16]
    except FileNotFoundError as error:
        raise CheckpointNotFoundError(f'checkpoint {source} does not exist') from error
    except OSError as error:
        raise CheckpointError(f'checkpoint {source} cannot be read: {error}') from error
    if not head:
        raise CheckpointError(f'checkpoint {source} is empty')
    file_format = sniff_format(head)
    if file_format is None:
        raise CheckpointError(
            f'checkpoint {source} is neither a torch checkpoint nor a safetensors file'
        )
    if file_format == 'safetensors':
        return _load_safetensors(path if local else payload, source, map_location)
    # Local zip archives are memory-mapped: a large file is not held twice in memory.
    mmap = local and file_format == 'torch' and _TORCH_LOAD_HAS_MMAP
    return _load_torch(path if local else io.BytesIO(payload), source, map_location, mmap)


def _read_head(path: str) -> bytes:
    with open(path, 'rb') as file:
        return file.read(16)


def _load_torch(file: str | io.BytesIO, source: str, map_location: str, mmap: bool) -> Any:
    try:
        with _extra_safe_globals():
            options = {'mmap': True} if mmap else {}
            return torch.load(file, map_location=map_location, weights_only=True, **options)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f'checkpoint {source} was refused by the safe loader (weights_only=True): '
            f'{_refusal_reason(error)}; convert it where you trust its origin'
        ) from error
    except Exception as error:  # torch raises several types for corrupt archives
        raise CheckpointError(
            f'checkpoint {source} is not a readable torch checkpoint '
            f'({type(error).__name__}: {_first_line(error)})'
        ) from error


def _extra_safe_globals() -> contextlib.AbstractContextManager:
    """Allow :data:`_SAFE_EXTRA_GLOBALS` for one load (torch >= 2.5; older torch refuses them)."""
    if hasattr(torch.serialization, 'safe_globals'):
        return torch.serialization.safe_globals(_SAFE_EXTRA_GLOBALS)
    return contextlib.nullcontext()


def _load_safetensors(data: str | bytes, source: str, map_location: str) -> dict[str, torch.Tensor]:
    try:
        if isinstance(data, str):
            return load_safetensors_file(data, device=map_location)
        return {key: value.to(map_location) for key, value in load_safetensors(data).items()}
    except (SafetensorError, ValueError, OSError) as error:
        raise CheckpointError(
            f'checkpoint {source} is not a readable safetensors file: {_first_line(error)}'
        ) from error


def _first_line(error: BaseException) -> str:
    """The first sentence of an error message (torch appends paragraphs of advice)."""
    text = str(error).strip()
    return text.splitlines()[0].split('. ')[0] if text else ''


def _refusal_reason(error: pickle.UnpicklingError) -> str:
    """The object torch refused, from its long multi-paragraph message."""
    match = re.search(r'unsupported global:? (?:GLOBAL )?([\w.]+)', str(error), re.IGNORECASE)
    if match:
        return f'it would create or call {match.group(1)}, which is not a tensor or container'
    return 'it holds objects other than tensors and plain containers'


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
