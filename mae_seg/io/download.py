"""Downloading checkpoints once into a local cache."""

from __future__ import annotations

import hashlib
import http.client
import os
import posixpath
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ..errors import CheckpointError, CheckpointNotFoundError
from .formats import sniff_format
from .writing import atomic_output

_CHUNK_BYTES = 1 << 20


def is_url(path: str) -> bool:
    """Whether ``path`` is an ``http(s)://`` URL."""
    return path.startswith(('http://', 'https://'))


def default_cache_dir() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/mae_seg/checkpoints``."""
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base) / 'mae_seg' / 'checkpoints'


def cached_path(url: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where ``url`` is cached: ``<cache_dir>/<url hash>/<file name>``.

    The hash keeps apart files that share a name (``.../resolve/main/model.safetensors``).
    """
    name = posixpath.basename(urllib.parse.urlparse(url).path) or 'checkpoint'
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return Path(cache_dir or default_cache_dir()) / digest / name


def download_checkpoint(
    url: str,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """The local copy of ``url``, downloaded first if it is not in the cache yet.

    The download goes to a temporary file that is renamed into the cache only when complete
    and recognisably a torch or safetensors file, so an interrupted or failed download
    leaves nothing behind.

    Args:
        url: ``http(s)://`` address of a checkpoint.
        cache_dir: cache root; :func:`default_cache_dir` if not given.
        progress: show a progress bar on stderr.
        timeout: seconds to wait for the server on connecting and on each read.

    Raises:
        CheckpointNotFoundError: the server answers 404.
        CheckpointError: the download fails, is cut short, or is not a checkpoint file.
    """
    target = cached_path(url, cache_dir)
    if target.is_file():
        return target
    try:
        with _open(url, timeout) as response, atomic_output(target) as temporary:
            _save_body(response, temporary, url, progress, label=target.name)
    except CheckpointError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        reason = getattr(error, 'reason', None) or error
        raise CheckpointError(f'checkpoint {url} cannot be downloaded: {reason}') from error
    return target


def _open(url: str, timeout: float):
    try:
        return urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            raise CheckpointNotFoundError(f'checkpoint {url} does not exist (HTTP 404)') from error
        raise CheckpointError(
            f'checkpoint {url} cannot be downloaded: HTTP {error.code} {error.reason}'
        ) from error


def _save_body(response, path: Path, url: str, progress: bool, label: str) -> None:
    """Stream the response body into ``path``; check that it is complete and a checkpoint."""
    expected = int(response.headers.get('Content-Length') or 0)
    bar = tqdm(
        total=expected or None,
        unit='B',
        unit_scale=True,
        unit_divisor=1024,
        desc=f'downloading {label}',
        disable=not progress,
        file=sys.stderr,
    )
    with open(path, 'wb') as file, bar:
        while chunk := response.read(_CHUNK_BYTES):
            file.write(chunk)
            bar.update(len(chunk))
        size = file.tell()
    if expected and size != expected:
        raise CheckpointError(
            f'download of {url} stopped after {size} of {expected} bytes; try again'
        )
    with open(path, 'rb') as file:
        head = file.read(16)
    if sniff_format(head) is None:
        content_type = response.headers.get('Content-Type', 'unknown')
        raise CheckpointError(
            f'{url} did not return a checkpoint file (got {size} bytes of {content_type}); '
            'check the address'
        )
