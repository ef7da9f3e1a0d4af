"""Fit a GPU recipe to the machine: clear errors for mixed precision, gloo DDP on the CPU."""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.device import get_device
from mmengine.logging import print_log

from ..errors import ConfigError
from .restarts import attempt_store, restart_count

__all__ = [
    'accelerator_available',
    'adapt_to_device',
    'init_process_group_on_cpu',
    'process_group',
]

AMP_ONLY_KEYS = ('loss_scale', 'dtype', 'use_fsdp')


def accelerator_available() -> bool:
    """Whether mmengine finds a device other than the CPU (CUDA, NPU, MLU, MUSA)."""
    return get_device() != 'cpu'


def _check_mixed_precision(cfg: Config) -> None:
    optim_wrapper = cfg.get('optim_wrapper') or {}
    wrapper_type = optim_wrapper.get('type', 'OptimWrapper')
    if wrapper_type == 'AmpOptimWrapper' and not accelerator_available():
        raise ConfigError(
            'optim_wrapper.type is AmpOptimWrapper (mixed precision), which needs a GPU and '
            'this machine has none; to train in fp32 add '
            '--cfg-options optim_wrapper.type=OptimWrapper'
        )
    if wrapper_type == 'OptimWrapper':
        dropped = [key for key in AMP_ONLY_KEYS if key in optim_wrapper]
        for key in dropped:
            optim_wrapper.pop(key)
        if dropped:
            print_log(
                f'optim_wrapper.type is OptimWrapper: dropped AmpOptimWrapper-only keys {dropped}',
                logger='current',
            )


def _adapt_distributed_to_cpu(cfg: Config) -> None:
    if cfg.launcher != 'pytorch':
        raise ConfigError(
            f'--launcher {cfg.launcher} needs GPUs; on a machine without one, launch with '
            'tools/dist_train.sh or tools/dist_test.sh (torchrun, --launcher pytorch)'
        )
    env_cfg = cfg.get('env_cfg') or {}
    dist_cfg = dict(env_cfg.get('dist_cfg') or {})
    changes = []
    if dist_cfg.get('backend', 'nccl') != 'gloo':
        changes.append(f'dist backend {dist_cfg.get("backend", "nccl")} -> gloo')
        dist_cfg['backend'] = 'gloo'
    env_cfg['dist_cfg'] = dist_cfg
    cfg.env_cfg = env_cfg
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='CPUDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False),
        )
        changes.append('model wrapper -> CPUDistributedDataParallel (SyncBN -> BN)')
    # Before the process group exists every rank would log this; torchrun's RANK tells them apart.
    if changes and os.environ.get('RANK', '0') == '0':
        print_log(f'No GPU: {"; ".join(changes)}', logger='current', level=logging.WARNING)


def adapt_to_device(cfg: Config, training: bool = True) -> None:
    """Check and adjust ``cfg`` for the devices of this machine, in place.

    With a GPU nothing changes. Without one: mixed precision for training is refused with
    the option that turns it off; distributed runs (``--launcher pytorch``) use gloo and
    ``CPUDistributedDataParallel``.

    Raises:
        ConfigError: ``AmpOptimWrapper`` for training, or a launcher other than
            ``pytorch`` for a distributed run, on a machine without a GPU.
    """
    if training:
        _check_mixed_precision(cfg)
    if cfg.get('launcher', 'none') != 'none' and not accelerator_available():
        _adapt_distributed_to_cpu(cfg)


def init_process_group_on_cpu(cfg: Config) -> None:
    """Join the torchrun process group before mmengine's ``Runner`` is built.

    Without a GPU: mmengine's ``init_dist`` calls ``torch.cuda.set_device``, which fails;
    the ``Runner`` skips it when the group exists. With GPUs, only when torchrun restarted
    the processes (see :func:`~mae_seg.runner.restarts.attempt_store`). Same environment
    (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) and ``env_cfg.dist_cfg``
    options.
    """
    if cfg.get('launcher', 'none') != 'pytorch' or dist.is_initialized():
        return
    on_gpu = accelerator_available()
    if on_gpu and restart_count() == 0:
        return
    options = dict((cfg.get('env_cfg') or {}).get('dist_cfg') or {})
    backend = options.pop('backend', 'nccl' if on_gpu else 'gloo')
    if options.get('timeout') is not None:
        options['timeout'] = datetime.timedelta(seconds=options['timeout'])
    if on_gpu:
        torch.cuda.set_device(int(os.environ['LOCAL_RANK']))
    rank, world_size = int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])
    dist.init_process_group(
        backend=backend, store=attempt_store(), rank=rank, world_size=world_size, **options
    )


@contextmanager
def process_group(cfg: Config) -> Iterator[None]:
    """The run's process group: joined on a CPU if needed, destroyed when the run ends.

    mmengine never destroys the group it creates; gloo's threads left running when the
    interpreter exits can abort the process after a finished run (SIGABRT under torchrun).
    """
    init_process_group_on_cpu(cfg)
    try:
        yield
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
