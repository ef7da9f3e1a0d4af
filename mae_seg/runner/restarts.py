"""Restarts where a restart can help: runs resume by themselves, deterministic errors stop.

A launcher (``tools/dist_train.sh``, which runs :func:`launch`; Slurm's requeue) restarts
a run after a failure. A killed process or a lost node is worth a restart; a config or
data error, a non-finite loss, or the same exception at the same iteration as in the
attempt before, is not: the process that meets one reports it in one line and claims the
launcher's stop file, and the launcher stops with exit status 2.

torchrun's own ``--max-restarts`` restarts every failure, the deterministic ones too: a
batch size that the model cannot train on came back three times, with eight tracebacks.
:func:`launch` runs each attempt as one torchrun launch without restarts of its own and
starts the next only if no process claimed the stop file. A killed process or a failed
node gets one line and a restart, which resumes from the latest checkpoint.

``python -m mae_seg.runner [torchrun options] SCRIPT [script options]`` runs :func:`launch`.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import logging
import os
import os.path as osp
import sys
import tempfile

import torch.distributed as dist

__all__ = [
    'RESTART_ENV',
    'STOP_FILE_ENV',
    'WORK_DIR_STOP_FILE',
    'attempt_store',
    'claim_stop',
    'deterministic_failure',
    'describe_failure',
    'launch',
    'record_failure',
    'record_stop',
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
# In the work directory: why the run stopped for good (a non-finite loss). A restart by
# Slurm's requeue, which has no stop file of ours, reads it and stops too: resuming is
# exact, so it would only train into the same NaN again.
WORK_DIR_STOP_FILE = 'non_finite_loss.txt'
PROG = 'dist_train.sh'
ELASTIC = 'torch.distributed.elastic'


def restart_count() -> int:
    """How many times torchrun or Slurm has restarted this run (0 for a first start)."""
    counts = [os.environ.get(name, '0') for name in RESTART_COUNTERS]
    return max(int(count) if count.isdigit() else 0 for count in counts)


def stop_reason(work_dir: str) -> str | None:
    """Why an earlier attempt of this run stopped for good, if a restart should not retrain.

    Only restarts read it; a run started by a person forgets it (the file is removed).
    """
    path = osp.join(work_dir, WORK_DIR_STOP_FILE)
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


def record_stop(work_dir: str, reason: str) -> None:
    """Remember in the work directory that the run stopped for good (read by :func:`stop_reason`).

    Only rank 0 writes: every rank stops for the same reason.
    """
    if os.environ.get('RANK', '0') != '0':
        return
    with contextlib.suppress(OSError):  # a record is worth no second error
        os.makedirs(work_dir, exist_ok=True)
        with open(osp.join(work_dir, WORK_DIR_STOP_FILE), 'w') as file:
            file.write(f'{reason}\n')


def deterministic_failure(work_dir: str, error: BaseException, iteration: int | None) -> str | None:
    """Why ``error`` is not worth another restart, if it ended the attempt before alike.

    Args:
        work_dir: the run's work directory.
        error: the exception that ends this attempt.
        iteration: the iteration the run had reached (None before training started).

    Returns:
        ``'ValueError: ... at iteration 3, as in the attempt before the restart: ...'``, or
        None for a first failure (a restart may help).
    """
    lines = str(error).strip().splitlines()
    failure = f'{type(error).__name__}: {lines[0] if lines else ""}'.rstrip(': ')
    if not record_failure(work_dir, failure, iteration):
        return None
    where = 'before training' if iteration is None else f'at iteration {iteration}'
    return (
        f'{failure} {where}, as in the attempt before the restart: '
        'the error is deterministic; not restarting again'
    )


def attempt_store() -> dist.Store:
    """torchrun's store, with keys of this attempt only.

    torch 2.14 keeps the store of the first attempt when torchrun restarts its processes,
    so restarted processes read the addresses of the dead ones and never connect; a prefix
    per restart (``TORCHELASTIC_RESTART_COUNT``) keeps the attempts apart.
    """
    store = dist.TCPStore(
        os.environ['MASTER_ADDR'], int(os.environ['MASTER_PORT']), is_master=False
    )
    return dist.PrefixStore(f'attempt_{restart_count()}', store)


def describe_failure(exitcode: int, signal_name: str = '') -> str:
    """``'was killed by SIGKILL'`` or ``'exited with status 1'``."""
    if exitcode < 0:
        return f'was killed by {signal_name or f"signal {-exitcode}"}'
    return f'exited with status {exitcode}'


class _QuietAfterStop(logging.Filter):
    """Drops torchrun's reports once a process has stopped the run and said why in one line
    (the other processes' ``SIGTERM``, "failed (exitcode: 2)")."""

    def __init__(self, stop_file: str) -> None:
        super().__init__()
        self.stop_file = stop_file

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith(ELASTIC) and os.path.exists(self.stop_file))


def _handlers(name: str) -> list[logging.Handler]:
    """The handlers a record of logger ``name`` reaches."""
    handlers, logger = [], logging.getLogger(name)
    while logger is not None:
        handlers += logger.handlers
        logger = logger.parent if logger.propagate else None
    return handlers


def launch(argv: list[str]) -> int:
    """Run torchrun with ``argv``, restarting up to its ``--max-restarts`` times.

    Returns:
        0 when the run ends well, 2 when a process stopped it for good (it printed why),
        1 when the restarts ran out.
    """
    from torch.distributed.run import parse_args, run

    args = parse_args(argv)
    max_restarts, args.max_restarts = args.max_restarts, 0
    saved = {name: os.environ.get(name) for name in (STOP_FILE_ENV, RESTART_ENV)}
    try:
        with tempfile.TemporaryDirectory(prefix='mae_seg_run_') as state:
            stop_file = os.environ[STOP_FILE_ENV] = os.path.join(state, 'stop')
            quiet = _QuietAfterStop(stop_file)
            for handler in _handlers(f'{ELASTIC}.multiprocessing.api'):
                handler.addFilter(quiet)
            try:
                return _attempts(run, args, max_restarts, stop_file)
            finally:
                for handler in _handlers(f'{ELASTIC}.multiprocessing.api'):
                    handler.removeFilter(quiet)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _attempts(run, args, max_restarts: int, stop_file: str) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    for attempt in range(max_restarts + 1):
        os.environ[RESTART_ENV] = str(attempt)
        try:
            run(copy.copy(args))
            return 0
        except ChildFailedError as error:
            rank, failure = error.get_first_failure()
            what = f'rank {rank} {describe_failure(failure.exitcode, failure.signal_name())}'
        if os.path.exists(stop_file):
            return 2
        if attempt == max_restarts:
            print(
                f'{PROG}: error: {what}, after {max_restarts} restarts; see its output above',
                file=sys.stderr,
            )
            return 1
        print(
            f'{PROG}: {what}: restarting all processes ({attempt + 1} of {max_restarts})',
            file=sys.stderr,
            flush=True,
        )
        gc.collect()  # the failed launch's store must free its port first
    return 1

