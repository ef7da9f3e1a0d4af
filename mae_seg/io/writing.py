"""Writing files so that readers never see a partial one."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    The temporary file is in the same directory (so the rename is atomic), has a unique
    name (so concurrent writers do not collide) and is removed when the block raises or is
    interrupted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f'.{path.name}.{secrets.token_hex(4)}.part'
    temporary.open('xb').close()  # created with the usual permissions, unlike mkstemp's 0600
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def check_output_path(path: str | os.PathLike, overwrite: bool = False) -> None:
    """Fail early if ``path`` cannot be an output file.

    Raises:
        CheckpointError: ``path`` is a directory, or exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f'output {path} is a directory; give a file name')
    if path.exists() and not overwrite:
        raise CheckpointError(
            f'output {path} exists; choose another name or allow replacing it (--force)'
        )


def save_checkpoint_file(checkpoint: Any, path: str | os.PathLike, overwrite: bool = False) -> None:
    """``torch.save`` to ``path`` atomically, refusing to replace a file unless ``overwrite``.

    Raises:
        CheckpointError: ``path`` is a directory, exists and ``overwrite`` is false, or cannot
            be written.
    """
    path = Path(path)
    check_output_path(path, overwrite)
    try:
        with atomic_output(path) as temporary:
            torch.save(checkpoint, temporary)
    except OSError as error:
        raise CheckpointError(f'output {path} cannot be written: {error}') from error
