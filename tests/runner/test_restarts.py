"""Restarts: the launcher of dist_train.sh restarts after a killed process, never after a
stop; deterministic failures and non-finite losses stop a restarted run."""

import os
import socket

from mae_seg.runner.restarts import (
    RESTART_ENV,
    STOP_FILE_ENV,
    WORK_DIR_STOP_FILE,
    claim_stop,
    describe_failure,
    deterministic_failure,
    launch,
    record_failure,
    record_stop,
    stop_reason,
)

# A stand-in training script: records each attempt of each rank, then acts as told.
SCRIPT = """
import os, signal, sys
attempt, rank = os.environ['MAE_SEG_RESTART_COUNT'], os.environ['RANK']
open(os.path.join(sys.argv[1], f'attempt{attempt}.rank{rank}'), 'w').close()
mode = sys.argv[2]
if mode == 'killed-once' and attempt == '0' and rank == '1':
    os.kill(os.getpid(), signal.SIGKILL)
if mode == 'stops':
    try:
        os.close(os.open(os.environ['MAE_SEG_STOP_FILE'], os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        print('script: error: a config error', file=sys.stderr)
    except FileExistsError:
        pass
    sys.exit(2)
if mode == 'fails':
    sys.exit(1)
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_launcher(tmp_path, mode, max_restarts=2):
    script = tmp_path / 'script.py'
    script.write_text(SCRIPT)
    argv = [
        '--nproc_per_node=2', f'--max-restarts={max_restarts}', '--master_addr=127.0.0.1',
        f'--master_port={free_port()}', '--monitor-interval=0.1', str(script), str(tmp_path), mode,
    ]  # fmt: skip
    status = launch(argv)
    attempts = sorted(p.name for p in tmp_path.glob('attempt*'))
    return status, attempts


def test_a_killed_process_is_restarted(tmp_path, capfd):
    status, attempts = run_launcher(tmp_path, 'killed-once')
    assert status == 0
    assert attempts == ['attempt0.rank0', 'attempt0.rank1', 'attempt1.rank0', 'attempt1.rank1']
    err = capfd.readouterr().err
    assert 'dist_train.sh: rank 1 was killed by SIGKILL: restarting all processes (1 of 2)' in err


def test_a_stop_is_not_restarted_and_reported_once(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')  # else torchrun warns that it sets it
    status, attempts = run_launcher(tmp_path, 'stops')
    assert status == 2
    assert attempts == ['attempt0.rank0', 'attempt0.rank1']
    captured = capfd.readouterr()
    assert (captured.out + captured.err).strip().splitlines() == ['script: error: a config error']
    assert STOP_FILE_ENV not in os.environ and RESTART_ENV not in os.environ


def test_restarts_run_out(tmp_path, capfd):
    status, attempts = run_launcher(tmp_path, 'fails', max_restarts=1)
    assert status == 1
    assert len(attempts) == 4
    err = capfd.readouterr().err
    assert 'dist_train.sh: error: rank 0 exited with status 1, after 1 restarts' in err


def test_describe_failure():
    assert describe_failure(-9, 'SIGKILL') == 'was killed by SIGKILL'
    assert describe_failure(-15) == 'was killed by signal 15'
    assert describe_failure(2) == 'exited with status 2'


def test_first_process_to_stop_reports(tmp_path, monkeypatch):
    assert claim_stop('no launcher: every process reports')
    monkeypatch.setenv(STOP_FILE_ENV, str(tmp_path / 'stop'))
    assert claim_stop('first')
    assert not claim_stop('second')
    assert (tmp_path / 'stop').read_text() == 'first\n'


def test_the_same_failure_at_the_same_iteration_after_a_restart(tmp_path, monkeypatch):
    monkeypatch.delenv('TORCHELASTIC_RESTART_COUNT', raising=False)
    monkeypatch.delenv('SLURM_RESTART_COUNT', raising=False)
    monkeypatch.setenv(RESTART_ENV, '0')
    assert not record_failure(str(tmp_path), 'ValueError: boom', 12)
    monkeypatch.setenv(RESTART_ENV, '1')
    assert not record_failure(str(tmp_path), 'ValueError: boom', 13)  # another iteration
    assert record_failure(str(tmp_path), 'ValueError: boom', 13)
    assert not record_failure(str(tmp_path), 'RuntimeError: other', 13)
    monkeypatch.setenv('RANK', '1')  # each rank keeps its own
    assert not record_failure(str(tmp_path), 'RuntimeError: other', 13)


def test_deterministic_failure_names_error_and_iteration(tmp_path, monkeypatch):
    for name in ('TORCHELASTIC_RESTART_COUNT', 'SLURM_RESTART_COUNT', 'RANK'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(RESTART_ENV, '0')
    error = ValueError('planted failure\nsecond line')
    assert deterministic_failure(str(tmp_path), error, 1) is None
    monkeypatch.setenv(RESTART_ENV, '1')
    assert deterministic_failure(str(tmp_path), error, 1) == (
        'ValueError: planted failure at iteration 1, as in the attempt before the restart: '
        'the error is deterministic; not restarting again'
    )
    assert deterministic_failure(str(tmp_path), KeyError('x'), None) is None
    assert 'before training' in deterministic_failure(str(tmp_path), KeyError('x'), None)


def test_a_recorded_stop_stops_restarts_and_a_new_start_forgets_it(tmp_path, monkeypatch):
    for name in ('TORCHELASTIC_RESTART_COUNT', 'SLURM_RESTART_COUNT', 'RANK'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('RANK', '1')
    record_stop(str(tmp_path), 'non-finite loss at iteration 7')
    assert not (tmp_path / WORK_DIR_STOP_FILE).exists()  # rank 0 writes for all
    monkeypatch.setenv('RANK', '0')
    record_stop(str(tmp_path), 'non-finite loss at iteration 7')
    monkeypatch.setenv('SLURM_RESTART_COUNT', '1')
    assert stop_reason(str(tmp_path)) == 'non-finite loss at iteration 7'
    monkeypatch.setenv('SLURM_RESTART_COUNT', '0')
    assert stop_reason(str(tmp_path)) is None
    assert not (tmp_path / WORK_DIR_STOP_FILE).exists()


def test_the_launcher_module_runs_without_a_warning():
    # dist_train.sh runs `python -m mae_seg.runner`; a module the package imports would warn.
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, '-m', 'mae_seg.runner', '--help'], capture_output=True, text=True
    )
    assert result.returncode == 0 and '--max-restarts' in result.stdout
    assert result.stderr == ''
