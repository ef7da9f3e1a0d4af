"""Shims for running the OpenMMLab 1.x stack on current PyTorch, each one explained.

Importing :mod:`mae_seg` changes nothing here: it only registers classes. Our tools call
:func:`setup_openmmlab` first thing; Python users who drive mmengine's ``Runner`` or
``Config`` themselves call it once too. Two shims are also applied where they are needed
for a result to be right at all: :func:`resolve_scoped_configs` by
:func:`mae_seg.runner.load_config`, and :func:`allow_mmengine_checkpoints` by our runner
and our resumable train loop (which mmseg's own ``tools/train.py`` builds from our configs).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import pickle
import warnings
from logging import FileHandler
from typing import Any

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, MMLogger
from mmengine.model import BaseModule

__all__ = [
    'allow_mmengine_checkpoints',
    'setup_openmmlab',
    'installed_package_path',
    'mmengine_checkpoint_globals',
    'quiet_known_warnings',
    'resolve_scoped_configs',
    'summarize_init_info',
]


def _history_buffer_getattr(owner: Any, name: str) -> Any:
    """Stand-in for ``builtins.getattr`` while unpickling with ``weights_only=True``.

    mmengine pickles ``HistoryBuffer._statistics_methods`` (functions such as
    ``HistoryBuffer.mean``), which pickle encodes as ``getattr(HistoryBuffer, 'mean')``.
    Allowing the real ``getattr`` would let a crafted file reach any attribute of any
    allowed object; this one resolves only statistics methods of ``HistoryBuffer``.
    """
    if owner is HistoryBuffer and callable(getattr(HistoryBuffer, name, None)):
        if not name.startswith('_'):
            return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({owner!r}, {name!r}) while loading a checkpoint with '
        'weights_only=True: only HistoryBuffer statistics methods are allowed'
    )


def _numpy_globals() -> list[Any]:
    """numpy objects that mmengine's message hub stores (arrays and scalars).

    They are registered under both the numpy 2 (``numpy._core``) and the numpy 1
    (``numpy.core``) names, so checkpoints written with either load.
    """
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    entries: list[Any] = [np.ndarray, np.dtype]
    for function in (multiarray._reconstruct, multiarray.scalar):
        for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
            entries.append((function, f'{module}.{function.__name__}'))
    # numpy >= 1.25 may pickle a dtype through its class (numpy.dtypes.Float64DType).
    entries.extend(type(np.dtype(code)) for code in '?bBhHiIlLqQefdgFDUS')
    return entries


def mmengine_checkpoint_globals() -> list[Any]:
    """The exact globals beyond plain tensors that mmengine 0.10 writes into a checkpoint.

    ``message_hub`` holds :class:`HistoryBuffer` objects with numpy arrays and scalars and
    the bound statistics methods (see :func:`_history_buffer_getattr`).
    """
    return [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'), *_numpy_globals()]


def allow_mmengine_checkpoints() -> None:
    """Let ``torch.load(..., weights_only=True)`` read checkpoints that mmengine writes.

    torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7 calls
    ``torch.load`` without the argument, so resuming (``--resume``) or ``load_from`` of
    its own checkpoints fails. Instead of switching the check off, which would let a
    crafted ``.pth`` run code, the few types mmengine writes are allow-listed.
    """
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(mmengine_checkpoint_globals())


def installed_package_path(package: str) -> str:
    """Directory of the module a distribution installs (``mmsegmentation`` -> ``.../mmseg``).

    Args:
        package: a distribution name, or a module name found on ``sys.path``.

    Raises:
        ModuleNotFoundError: neither a distribution nor an importable module of that name.
    """
    module = package
    try:
        top_level = importlib.metadata.distribution(package).read_text('top_level.txt')
    except importlib.metadata.PackageNotFoundError:
        top_level = None
    if top_level and top_level.split():
        module = top_level.split()[0]
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f'{package} is not installed, please install {package}')
    return os.path.dirname(spec.origin)


def _is_installed(package: str) -> bool:
    try:
        installed_package_path(package)
    except ModuleNotFoundError:
        return False
    return True


def resolve_scoped_configs() -> None:
    """Let configs inherit ``mmseg::`` bases when setuptools no longer ships ``pkg_resources``.

    mmengine 0.10.7 finds the package behind ``_base_ = ['mmseg::...']`` with
    ``pkg_resources``, which setuptools >= 81 removed, so every such config fails with
    ``No module named 'pkg_resources'``. The two look-ups it needs are answered with
    ``importlib.metadata`` instead; nothing changes where ``pkg_resources`` exists.
    """
    if importlib.util.find_spec('pkg_resources') is not None:
        return
    from mmengine.config import config

    config.is_installed = _is_installed
    config.get_installed_path = installed_package_path


# (message start, module that warns, why no user can act on it)
_KNOWN_WARNINGS = [
    (
        'The shape of value will convert from',
        r'mmengine\.structures\.pixel_data',
        'mmseg keeps 2-D maps in PixelData, which makes them (1, H, W) as intended and says so '
        'for every image: dozens of lines per test run',
    ),
    (
        '``build_loss`` would be deprecated soon',
        r'mmseg\.models\.builder',
        "mmseg's own decode heads call it",
    ),
    (
        'Default ``avg_non_ignore`` is False',
        r'mmseg\.models\.losses\.cross_entropy_loss',
        "the published recipes use mmseg's default; changing it changes the loss",
    ),
]


def quiet_known_warnings() -> None:
    """Hide the OpenMMLab warnings no user can act on, each by its message and module only
    (see ``_KNOWN_WARNINGS`` for why each one)."""
    for message, module, _ in _KNOWN_WARNINGS:
        warnings.filterwarnings('ignore', message=message, category=UserWarning, module=module)


def summarize_init_info() -> None:
    """One summary line instead of mmengine's per-parameter initialisation report.

    Without a log file, mmengine's ``BaseModule`` logs three lines for every parameter of a
    model it initialises (thousands for a segmentor). With one (a ``Runner``'s), the report
    goes to that file as before, and the terminal gets the summary line.
    """
    if getattr(BaseModule._dump_init_info, '_summarized', False):
        return
    dump_to_file = BaseModule._dump_init_info

    def dump_init_info(module: BaseModule) -> None:
        logger = MMLogger.get_current_instance()
        log_files = [h.baseFilename for h in logger.handlers if isinstance(h, FileHandler)]
        if log_files:
            dump_to_file(module)
        params = list(module.parameters())
        where = f'per-parameter details in {log_files[0]}' if log_files else 'no log file'
        logger.info(
            f'{type(module).__name__}: initialised {len(params)} parameter tensors '
            f'({sum(p.numel() for p in params) / 1e6:.2f} M values); {where}'
        )

    dump_init_info._summarized = True
    BaseModule._dump_init_info = dump_init_info


def setup_openmmlab(quiet: bool = True) -> None:
    """Prepare this process for mmengine and mmseg with current torch and setuptools.

    Allow-lists what mmengine writes into checkpoints (:func:`allow_mmengine_checkpoints`),
    resolves ``mmseg::`` config bases without ``pkg_resources``
    (:func:`resolve_scoped_configs`) and, with ``quiet``, hides the warnings no user can act
    on (:func:`quiet_known_warnings`) and sums up mmengine's per-parameter initialisation
    report in one line (:func:`summarize_init_info`). Safe to call more than once.

    Args:
        quiet: also quiet mmengine's and mmseg's output (False: only what correctness needs).
    """
    allow_mmengine_checkpoints()
    resolve_scoped_configs()
    if quiet:
        quiet_known_warnings()
        summarize_init_info()
