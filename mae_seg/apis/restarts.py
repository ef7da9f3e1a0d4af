"""Runs that a launcher restarted after a failure resume by themselves."""

from __future__ import annotations

import contextlib
import os
import os.path as osp

__all__ = ['restart_count', 'stop_reason']

# torchrun (--max-restarts) and Slurm (a requeued job) count the restarts of a run here.
RESTART_COUNTERS = ('TORCHELASTIC_RESTART_COUNT', 'SLURM_RESTART_COUNT')


def restart_count() -> int:
    """How many times torchrun or Slurm has restarted this run (0 for a first start)."""
    counts = [os.environ.get(name, '0') for name in RESTART_COUNTERS]
    return max(int(count) if count.isdigit() else 0 for count in counts)


def stop_reason(work_dir: str) -> str | None:
    """Why an earlier attempt of this run stopped for good, if a restart should not retrain.

    Only restarts read it; a run started by a person forgets it (the file is removed).
    """
    from ..engine.finite_loss import STOP_FILE

    path = osp.join(work_dir, STOP_FILE)
    if not osp.isfile(path):
        return None
    if restart_count() == 0:
        with contextlib.suppress(FileNotFoundError):  # every rank tries
            os.remove(path)
        return None
    with open(path) as file:
        return file.read().strip()
