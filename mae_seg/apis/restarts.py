"""Restarts where a restart can help: runs resume by themselves, deterministic errors stop.

A launcher (``tools/dist_train.sh``, see :mod:`mae_seg.apis.launch`; Slurm's requeue)
restarts a run after a failure. A killed process or a lost node is worth a restart; a
config or data error, or the same exception at the same iteration as in the attempt
before, is not: the process that meets one reports it in one line and claims the
launcher's stop file, and the launcher stops with exit status 2.
"""

from __future__ import annotations

import contextlib
import os
import os.path as osp

__all__ = [
    'RESTART_ENV',
    'STOP_FILE_ENV',
    'claim_stop',
    'record_failure',
    'restart_count',
    'stop_reason',
]

# Our launcher, torchrun (--max-restarts) and Slurm (a requeued job) count the restarts of
# a run here.
RESTART_ENV = 'MAE_SEG_RESTART_COUNT'
RESTART_COUNTERS = (RESTART_ENV, 'TORCHELASTIC_RESTART_COUNT', 'SLURM_RESTART_COUNT')
# The file a launcher that restarts watches: whoever creates it has stopped the run for good.
STOP_FILE_ENV = 'MAE_SEG_STOP_FILE'
# In the work directory, one per rank: the failure of the attempt before, to recognise it.
FAILURE_FILE = 'last_failure.rank{rank}.txt'


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


def claim_stop(reason: str) -> bool:
    """Tell the launcher not to restart; whether this process is the one to report it.

    The first process to create the launcher's stop file reports (one line for the run,
    not one per rank); without a launcher that restarts, every process reports.
    """
    path = os.environ.get(STOP_FILE_ENV)
    if not path:
        return True
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, 'w') as file:
        file.write(f'{reason}\n')
    return True


def record_failure(work_dir: str, failure: str, iteration: int | None) -> bool:
    """Remember a failure in the work directory; whether the attempt before failed alike.

    Args:
        work_dir: the run's work directory.
        failure: ``'ExceptionType: first line of the message'``.
        iteration: the iteration the run had reached (None before training started).

    Returns:
        True when this is a restart and the attempt before ended with the same failure
        at the same iteration: a deterministic error, which another restart would repeat.
    """
    path = osp.join(work_dir, FAILURE_FILE.format(rank=os.environ.get('RANK', '0')))
    record = f'{iteration}\t{failure}'
    previous = None
    if osp.isfile(path):
        with open(path) as file:
            previous = file.read().rstrip('\n')
    with contextlib.suppress(OSError):  # a record is worth no second error
        os.makedirs(work_dir, exist_ok=True)
        with open(path, 'w') as file:
            file.write(f'{record}\n')
    return restart_count() > 0 and previous == record
