"""The weights a run loads into its model, checked before the run and when loaded.

Three ways weights reach a model: ``load_from`` (``tools/test.py``'s checkpoint, or a
segmentor checkpoint to fine-tune from), ``--resume`` (the latest checkpoint of the work
directory) and ``Pretrained`` inits (``init_cfg`` or MAEViT's ``pretrained``). mmengine
loads all of them non-strictly; here each is compared with the model by
:func:`~mae_seg.io.fit.check_state_dict_fits` and refused unless it fits.

Fine-tuning a segmentor checkpoint to another class count is asked for by name: the config
key ``load_from_reinit`` lists the modules (or ``fnmatch`` patterns of keys) whose tensors
are not loaded and keep their fresh initialisation, e.g.
``load_from_reinit = ['decode_head.conv_seg', 'auxiliary_head.conv_seg']``.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger, print_log
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import find_latest_checkpoint
from mmseg.models.backbones import BEiT
from mmseg.registry import MODELS

from ..errors import CheckpointError, ConfigError
from ..io import extract_state_dict, load_checkpoint_file, summarize_keys
from ..io.fit import KeyMismatch, check_state_dict_fits, load_excuses, matching_keys
from ..models import MAEViT

__all__ = [
    'REINIT_KEY',
    'build_meta_model',
    'model_build_errors',
    'meta_build',
    'check_pretrained_inits',
    'check_weights_fit',
    'fit_load_from',
    'loaded_module',
    'reinit_patterns',
    'report_reinit',
]

REINIT_KEY = 'load_from_reinit'
DOC = 'docs/checkpoints_and_loading.md'


def loaded_module(model: torch.nn.Module) -> torch.nn.Module:
    """The module a whole-model checkpoint is loaded into: mmengine's rule, which unwraps
    DDP and test-time-augmentation models (``SegTTAModel.module``)."""
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def reinit_patterns(cfg: Config) -> list[str]:
    """``load_from_reinit`` as a list of patterns.

    Raises:
        ConfigError: it is not a string or a list of strings.
    """
    patterns = cfg.get(REINIT_KEY) or []
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, (list, tuple)) or not all(isinstance(p, str) for p in patterns):
        raise ConfigError(
            f'{REINIT_KEY} must be a list of module names or key patterns such as '
            f"['decode_head.conv_seg'], got {patterns!r}"
        )
    return list(patterns)


def _fix(purpose: str, mismatch: KeyMismatch) -> str:
    """What to do about a whole-model checkpoint that does not fit, by why it is loaded."""
    if purpose == 'resume':
        return (
            'the work directory holds a run of another config: resume with that config, '
            'or train in a new --work-dir'
        )
    if purpose == 'test':
        return 'use the config the checkpoint was trained with'
    modules = dict.fromkeys(key.rsplit('.', 1)[0] for key, _, _ in mismatch.mismatched)
    if modules and not mismatch.missing:
        listed = ', '.join(repr(m) for m in modules)
        return (
            f'to fine-tune it to this config, re-initialise what differs with '
            f'{REINIT_KEY} = [{listed}] ({DOC})'
        )
    return f'fix the model config to the checkpoint ({DOC})'


def fit_load_from(
    state_dict: dict[str, torch.Tensor],
    model: torch.nn.Module,
    source: str,
    patterns: list[str] = (),
    purpose: str = 'train',
    target: str = 'the model',
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The tensors of a whole-model checkpoint to load, after checking they fit.

    Args:
        state_dict: the checkpoint's tensors (``module.`` prefixes removed).
        model: the model (built on the meta device will do).
        source: the checkpoint, for messages.
        patterns: ``load_from_reinit``: keys not to load (training from ``load_from`` only).
        purpose: ``'train'`` (``load_from``), ``'test'`` (also inference) or ``'resume'``:
            chooses the fix.
        target: what it is loaded into, for the message (a config's name).

    Returns:
        the state dict without the re-initialised keys, and those keys.

    Raises:
        ConfigError: a pattern names no key of the model.
        CheckpointMismatchError: naming the keys, and the fix for ``purpose``.
    """
    expected = model.state_dict()
    unknown = [p for p in patterns if not matching_keys(expected, [p])]
    if unknown:
        raise ConfigError(
            f'{REINIT_KEY}: {", ".join(map(repr, unknown))} names no key of the model '
            f'(module names such as decode_head.conv_seg, or patterns such as layers.*.gamma_1)'
        )
    reinit = set(matching_keys(expected, patterns))
    state_dict = {k: v for k, v in state_dict.items() if k not in reinit}
    check_state_dict_fits(
        state_dict,
        expected,
        f'checkpoint {source}',
        fix=partial(_fix, purpose),
        target=target,
        may_be_missing=patterns,
        **load_excuses(model),
    )
    return state_dict, sorted(reinit)


@contextmanager
def meta_build() -> Iterator[None]:
    """Build modules on the meta device (no memory, no weights read), the builders quiet."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # the builders' tables are for the run's log
    try:
        with torch.device('meta'), warnings.catch_warnings():
            warnings.simplefilter('ignore')  # deprecation notes of mmseg's builders
            yield
    finally:
        logger.setLevel(level)


@contextmanager
def model_build_errors(what: str = 'building the model') -> Iterator[None]:
    """A model that its config cannot build is a config mistake: one line, not a traceback.

    mmengine's registry passes on whatever the class raises for an argument's value (a
    ``ValueError`` for ``position_fit='extnd'``, a ``TypeError``, an ``AssertionError``),
    with a traceback through the builders; here it becomes a :class:`ConfigError`.

    Raises:
        ConfigError: ``'<what>: ValueError: <message on one line>'``.
    """
    try:
        yield
    except (ConfigError, CheckpointError):
        raise
    except Exception as error:  # noqa: BLE001 - any build failure is the config's to see
        message = ' '.join(str(error).split())
        raise ConfigError(f'{what}: {type(error).__name__}: {message}') from error


def build_meta_model(cfg: Config) -> torch.nn.Module:
    """The config's model on the meta device (:func:`meta_build`).

    Raises:
        ConfigError: the model cannot be built from the config (:func:`model_build_errors`).
    """
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    with model_build_errors(), meta_build():
        return MODELS.build(copy.deepcopy(cfg.model))


def _pretrained_init(module: torch.nn.Module) -> dict | None:
    init_cfgs = getattr(module, 'init_cfg', None)
    for init_cfg in init_cfgs if isinstance(init_cfgs, list) else [init_cfgs]:
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            return init_cfg
    return None


def _pretrained_excuses(module: torch.nn.Module) -> dict[str, tuple[str, ...]]:
    """What a pretrained checkpoint of ``module`` may lack, and what its load fits.

    mmseg's own ``MAE`` / ``BEiT`` load their ``Pretrained`` weights themselves, with MAEViT's
    key names, fitting the positions, and keep ``relative_position_index`` buffers.
    """
    if isinstance(module, BEiT):
        lacks = MAEViT.PRETRAINING_LACKS + MAEViT.LOAD_IGNORES
        return dict(may_be_missing=lacks, resized=MAEViT.LOAD_RESIZES)
    return dict(resized=tuple(load_excuses(module)['resized']))


def check_pretrained_inits(model: torch.nn.Module) -> None:
    """Each ``Pretrained`` init in ``model`` holds every tensor its module needs.

    Modules with a ``pretrained_state_dict`` method (MAEViT) check themselves; others are
    loaded as mmengine's ``PretrainedInit`` loads them (``prefix`` taken, ``module.``
    removed). Keys the module does not have are allowed: a pretraining checkpoint holds
    decoders and heads the fine-tuned model drops.

    Raises:
        CheckpointError: a file cannot be read.
        CheckpointMismatchError: naming the module, the checkpoint and the keys.
    """
    for name, module in model.named_modules():
        init_cfg = _pretrained_init(module)
        if init_cfg is None:
            continue
        path, prefix = init_cfg['checkpoint'], init_cfg.get('prefix') or ''
        if hasattr(module, 'pretrained_state_dict'):
            module.pretrained_state_dict(path, prefix)
            continue
        where = f' under {prefix!r}' if prefix else ''
        state_dict = extract_state_dict(load_checkpoint_file(path), prefix=prefix)
        check_state_dict_fits(
            state_dict,
            module.state_dict(),
            f'{name or "model"}.init_cfg: checkpoint {path}{where}',
            fix=f'give a checkpoint of this module, or the prefix of its keys ({DOC})',
            may_be_unexpected=('*',),
            **_pretrained_excuses(module),
        )


def check_weights_fit(cfg: Config, training: bool, model: torch.nn.Module | None = None) -> None:
    """Every checkpoint the run will load fits its model, checked before the run starts.

    Training: ``Pretrained`` inits, then ``load_from`` (with ``load_from_reinit``) or, when
    resuming, the latest checkpoint of the work directory. Testing: ``load_from``.
    ``model``: the config's model built on the meta device, if already built.

    Raises:
        ConfigError: ``load_from_reinit`` is malformed or names nothing.
        CheckpointError: a checkpoint cannot be read, or does not fit (one line each).
    """
    # A test checkpoint must fit whole: the fine-tuning config's list applies to training.
    patterns = reinit_patterns(cfg) if training else []
    if patterns and not cfg.get('load_from'):
        raise ConfigError(
            f'{REINIT_KEY} re-initialises keys of the load_from checkpoint, and load_from is '
            'not set: set load_from or remove it'
        )
    model = model if model is not None else build_meta_model(cfg)
    if training:
        check_pretrained_inits(model)
    source, purpose = cfg.get('load_from'), 'train' if training else 'test'
    if training and cfg.get('resume'):
        # mmengine's rule: resume from load_from if given, else from the latest checkpoint.
        purpose, patterns = 'resume', []
        if source is None and cfg.get('work_dir'):
            source = find_latest_checkpoint(cfg.work_dir)
    if source is None:
        return
    state_dict = extract_state_dict(load_checkpoint_file(source))
    target = f'the model of {cfg.filename}' if cfg.filename else 'the model'
    fit_load_from(state_dict, loaded_module(model), source, patterns, purpose, target)


def report_reinit(source: str, reinit: list[str]) -> None:
    """The one line a run with ``load_from_reinit`` logs when it loads."""
    if reinit:
        print_log(
            f'{source}: re-initialised {summarize_keys(reinit)} ({REINIT_KEY}), loaded the rest',
            logger='current',
        )
