"""Train and test runs: checks, then mmengine's ``Runner`` (DDP through its launcher)."""

from __future__ import annotations

import logging
import os.path as osp
from dataclasses import dataclass

import torch
from mmengine.config import Config
from mmengine.dist import get_dist_info
from mmengine.logging import MMLogger
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model
from mmseg.registry import RUNNERS

from ..compat import allow_mmengine_checkpoints
from ..io import extract_state_dict
from .checks import check_run_inputs
from .device import process_group
from .weights import fit_load_from, loaded_module, reinit_patterns, report_reinit

__all__ = ['TrainSummary', 'build_runner', 'test', 'train']


@dataclass
class TrainSummary:
    """What one process did: with DDP every rank ends at the same iteration and weights."""

    rank: int
    world_size: int
    device: str
    iterations: int
    weights_checksum: float

    def __str__(self) -> str:
        return (
            f'rank {self.rank}/{self.world_size} on {self.device}: trained to iteration '
            f'{self.iterations}, weights checksum {self.weights_checksum:.6f}'
        )


# What mmengine's Runner logs once at its start, hundreds of lines in all: the environment,
# the whole config and the hook table. The log file keeps them; the terminal gets one line
# that says where they are.
_LOG_FILE_ONLY = ('System environment:', 'Config:', 'Hooks will be executed in the following order')


class _LogFileOnly(logging.Filter):
    """Keeps the start-of-run dumps of mmengine's Runner off a terminal handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage().lstrip('-\n ')
        return not message.startswith(_LOG_FILE_ONLY)


class _StrictRunner(Runner):
    """mmengine's ``Runner`` whose ``load_from`` and ``--resume`` loads are all or nothing.

    mmengine loads a checkpoint non-strictly and logs what did not fit; here it must fit
    (:func:`~mae_seg.runner.weights.fit_load_from`), except the keys ``load_from_reinit``
    names when fine-tuning from ``load_from``.
    """

    # Why a checkpoint is loaded: it decides what may differ and which fix is named.
    _load_purpose = 'test'

    def train(self) -> torch.nn.Module:
        self._load_purpose = 'train'
        return super().train()

    def resume(self, filename: str, *args, **kwargs) -> None:
        purpose, self._load_purpose = self._load_purpose, 'resume'
        try:
            super().resume(filename, *args, **kwargs)
        finally:
            self._load_purpose = purpose

    def load_checkpoint(
        self, filename: str, map_location='cpu', strict: bool = False, revise_keys=None
    ) -> dict:
        """mmengine's ``load_checkpoint`` with the checkpoint checked against the model first.

        Raises:
            CheckpointMismatchError: naming the keys that do not fit and the fix.
        """
        checkpoint = _load_checkpoint(filename, map_location=map_location)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = loaded_module(self.model)
        purpose = self._load_purpose
        patterns = reinit_patterns(self.cfg) if purpose == 'train' else []
        state_dict, reinit = fit_load_from(
            extract_state_dict(checkpoint), model, filename, patterns, purpose
        )
        checkpoint['state_dict'] = state_dict
        _load_checkpoint_to_model(model, checkpoint, strict=False)
        report_reinit(filename, reinit)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint


class _Runner(_StrictRunner):
    """mmengine's ``Runner`` whose terminal output leaves out the start-of-run dumps."""

    def build_logger(self, *args, **kwargs) -> MMLogger:
        logger = super().build_logger(*args, **kwargs)
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler:
                handler.addFilter(_LogFileOnly())
        return logger


def build_runner(cfg: Config, verbose: bool = False) -> Runner:
    """mmengine's ``Runner``, or the config's ``runner_type`` from mmseg's registry.

    Args:
        cfg: the run's config.
        verbose: print the environment, config and hook table on the terminal too (mmengine's
            ``Runner`` does); otherwise they go to the log file only, and the terminal gets
            one line naming it.
    """
    allow_mmengine_checkpoints()  # resume, load_from and test read mmengine's checkpoints
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    if verbose:
        return _StrictRunner.from_cfg(cfg)
    runner = _Runner.from_cfg(cfg)
    log_file = osp.join(runner.log_dir, f'{runner.timestamp}.log')
    runner.logger.info(f'environment, config and hooks: {log_file}')
    return runner


def _summarize(runner: Runner) -> TrainSummary:
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    with torch.no_grad():
        checksum = sum(p.detach().double().sum().item() for p in model.parameters())
    rank, world_size = get_dist_info()
    device = str(next(model.parameters()).device)
    return TrainSummary(rank, world_size, device, runner.iter, checksum)


def train(cfg: Config, verbose: bool = False) -> TrainSummary:
    """Check inputs, join the process group (on a CPU too) if launched so, and train.

    ``verbose`` as :func:`build_runner` takes it.

    Raises:
        ConfigError: a checkpoint or data set the run needs is missing or empty.
    """
    check_run_inputs(cfg, training=True)
    with process_group(cfg):
        runner = build_runner(cfg, verbose)
        runner.train()
        return _summarize(runner)


def test(cfg: Config, verbose: bool = False) -> dict:
    """Check inputs, join the process group (on a CPU too) if launched so, and test.

    ``verbose`` as :func:`build_runner` takes it.

    Returns:
        the evaluator's metrics, e.g. ``{'aAcc': ..., 'mIoU': ..., 'mAcc': ...}``.
    """
    check_run_inputs(cfg, training=False)
    with process_group(cfg):
        return build_runner(cfg, verbose).test()
