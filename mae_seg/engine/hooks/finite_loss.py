"""Stop training on a non-finite loss, before a checkpoint of spoiled weights is written."""

from __future__ import annotations

import logging
import math

import torch
from mmengine.dist import all_gather_object, all_reduce, get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper
from mmseg.registry import HOOKS

from ...errors import NonFiniteLossError

__all__ = ['NonFiniteLossHook', 'non_finite_terms']


def non_finite_terms(log_vars: dict) -> dict[str, float]:
    """The entries of a model's ``train_step`` output that are not finite numbers."""
    bad = {}
    for name, value in (log_vars or {}).items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            bad[name] = value
    return bad


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stops training with one line naming the iteration and the non-finite loss terms.

    With ``OptimWrapper`` the first non-finite loss stops the run: its gradients have
    already reached the weights. With ``AmpOptimWrapper`` the loss scaler skips such
    steps and the weights stay finite, so up to ``amp_patience`` consecutive ones are
    allowed (fp16 overflows now and then) before the run stops. It runs before
    ``CheckpointHook`` and raises :class:`NonFiniteLossError`, so the last checkpoint, the
    one ``--resume`` picks, holds finite weights. All ranks agree (one scalar all-reduce per
    iteration), so no rank is left waiting for the others. ``tools/train.py`` records the
    error in the work directory (:func:`mae_seg.runner.restarts.record_stop`), so a restart
    by torchrun or Slurm stops instead of training into the NaN again.

    Args:
        amp_patience: consecutive non-finite iterations tolerated under a loss scaler.
    """

    priority = 'NORMAL'  # before CheckpointHook ('VERY_LOW')

    def __init__(self, amp_patience: int = 5) -> None:
        self.amp_patience = amp_patience
        self.consecutive = 0

    def _all_ranks_terms(self, terms: dict[str, float]) -> dict[str, float] | None:
        """Non-finite terms of every rank together, or None when all ranks are finite."""
        if get_dist_info()[1] == 1:
            return terms or None
        flag = torch.tensor(float(bool(terms)))
        all_reduce(flag, op='max')
        if flag.item() == 0:
            return None
        merged: dict[str, float] = {}
        for rank_terms in all_gather_object(terms):
            merged.update(rank_terms)
        return merged

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        terms = self._all_ranks_terms(non_finite_terms(outputs))
        if terms is None:
            self.consecutive = 0
            return
        self.consecutive += 1
        iteration = runner.iter + 1
        named = {k: v for k, v in terms.items() if k != 'loss'} or terms
        listed = ', '.join(f'{name}={value}' for name, value in named.items())
        scaled = isinstance(runner.optim_wrapper, AmpOptimWrapper)
        if scaled and self.consecutive <= self.amp_patience:
            print_log(
                f'non-finite loss at iteration {iteration} ({listed}); the loss scaler skipped '
                f'the step ({self.consecutive} of {self.amp_patience} allowed in a row)',
                logger='current',
                level=logging.WARNING,
            )
            return
        last = runner.message_hub.get_info('last_ckpt')
        where = f'{last} is the last checkpoint' if last else 'no checkpoint was written'
        in_a_row = f' ({self.consecutive} iterations in a row)' if scaled else ''
        error = NonFiniteLossError(
            f'non-finite loss at iteration {iteration}{in_a_row}: {listed}; training '
            f'stopped, {where}'
        )
        raise error
