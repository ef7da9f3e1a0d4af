"""Train and test runs: checks, then mmengine's ``Runner`` (DDP through its launcher)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from mmengine.config import Config
from mmengine.dist import get_dist_info
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmseg.registry import RUNNERS

from .checks import check_run_inputs
from .device import process_group

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


def build_runner(cfg: Config) -> Runner:
    """mmengine's ``Runner``, or the config's ``runner_type`` from mmseg's registry."""
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def _summarize(runner: Runner) -> TrainSummary:
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    with torch.no_grad():
        checksum = sum(p.detach().double().sum().item() for p in model.parameters())
    rank, world_size = get_dist_info()
    device = str(next(model.parameters()).device)
    return TrainSummary(rank, world_size, device, runner.iter, checksum)


def train(cfg: Config) -> TrainSummary:
    """Check inputs, join the process group (on a CPU too) if launched so, and train.

    Raises:
        ConfigError: a checkpoint or data set the run needs is missing or empty.
    """
    check_run_inputs(cfg, training=True)
    with process_group(cfg):
        runner = build_runner(cfg)
        runner.train()
        return _summarize(runner)


def test(cfg: Config) -> dict:
    """Check inputs, join the process group (on a CPU too) if launched so, and test.

    Returns:
        the evaluator's metrics, e.g. ``{'aAcc': ..., 'mIoU': ..., 'mAcc': ...}``.
    """
    check_run_inputs(cfg, training=False)
    with process_group(cfg):
        return build_runner(cfg).test()
