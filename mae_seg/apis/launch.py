"""torchrun that restarts a run only where a restart can help: what ``dist_train.sh`` runs.

torchrun's ``--max-restarts`` restarts every failure, the deterministic ones too: a batch
size that the model cannot train on came back three times, with eight tracebacks. Here
each attempt is one torchrun launch without restarts of its own, and the next attempt
starts only if no process claimed the stop file (:func:`~mae_seg.apis.restarts.claim_stop`:
a config, checkpoint or data error, a non-finite loss, or the same exception at the same
iteration as in the attempt before). Then it ends with exit status 2 and the one line that
process printed. A killed process or a failed node gets one line here and a restart,
which resumes from the latest checkpoint.

``python -m mae_seg.apis.launch [torchrun options] SCRIPT [script options]``
"""

from __future__ import annotations

import copy
import gc
import logging
import os
import sys
import tempfile

from .restarts import RESTART_ENV, STOP_FILE_ENV

__all__ = ['describe_failure', 'launch']

PROG = 'dist_train.sh'
ELASTIC = 'torch.distributed.elastic'


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


if __name__ == '__main__':
    sys.exit(launch(sys.argv[1:]))
