"""A worker killed mid-run: torchrun restarts the processes, which resume by themselves."""

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from quick_start_kit import ShapesSpec, make_shapes_dataset

from mae_seg.io import load_checkpoint_file

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / 'configs/quick_start/mae-tiny_upernet_2xb4-400_shapes-128x128.py'

# Drop path 0.1 and dropout (the quick start's): the resumed run must redraw them exactly.
CONFIG = """
_base_ = [{quick!r}]
data_root = {data_root!r}
model = dict(pretrained=None)
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, end=8)]
train_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=8, val_interval=100)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2, max_keep_ckpts=1))
"""


# A failure planted at iteration 1 of every attempt: deterministic, as a bug in a hook is.
PLANTED_HOOK = """
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class PlantedFailureHook(Hook):
    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter == 1:
            raise ValueError('planted failure')
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def dist_train(config, work_dir, tag, *options, **env):
    environment = dict(
        os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable, PORT=str(free_port()), RUN_TAG=tag,
        **env,
    )  # fmt: skip
    command = ['bash', 'tools/dist_train.sh', str(config), '2', '--work-dir', str(work_dir)]
    command += list(options)
    return subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def worker_pid(tag, rank):
    """The first-attempt torchrun worker of ``rank`` among the processes tagged ``tag``."""
    wanted = {f'RUN_TAG={tag}', f'RANK={rank}', 'TORCHELASTIC_RESTART_COUNT=0'}
    for entry in Path('/proc').iterdir():
        try:
            environ = set((entry / 'environ').read_bytes().decode(errors='replace').split('\0'))
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and wanted <= environ:
            return int(entry.name)
    return None


def weights(path):
    return load_checkpoint_file(str(path))['state_dict']


@pytest.mark.slow
def test_killed_worker_restarts_and_ends_with_uninterrupted_weights(tmp_path):
    data_root = make_shapes_dataset(
        tmp_path / 'ADEChallengeData2016', ShapesSpec(num_train=8, num_val=1, short_side=64)
    )
    config = tmp_path / 'kill.py'
    config.write_text(CONFIG.format(quick=str(QUICK), data_root=str(data_root)))

    tag = uuid.uuid4().hex
    killed_dir = tmp_path / 'killed'
    run = dist_train(config, killed_dir, tag)
    pointer = killed_dir / 'last_checkpoint'
    deadline = time.monotonic() + 240
    while not (pointer.exists() and 'iter_2.pth' in pointer.read_text()):
        assert run.poll() is None and time.monotonic() < deadline, run.stdout.read()[-3000:]
        time.sleep(0.02)
    pid = worker_pid(tag, rank=1)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    killed_at = pointer.read_text().strip()
    print(f'killed rank 1 (pid {pid}) with SIGKILL after {Path(killed_at).name} was written')
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 0, output[-4000:]

    straight = dist_train(config, tmp_path / 'straight', uuid.uuid4().hex)
    straight_output, _ = straight.communicate(timeout=300)
    assert straight.returncode == 0, straight_output[-4000:]

    failure = re.findall(r'failed \(exitcode: -9\) local_rank: 1 .*', output)
    restart = re.findall(r'^train.py: restart 1 of this run: .*$', output, re.M)
    resumed = re.findall(r'Resumed at iteration \d+: .*', output)
    finished = re.findall(r'^rank \d/2 on cpu: trained to iteration 8, .*$', output, re.M)
    print(*failure, *restart, *resumed, *finished, sep='\n')
    assert len(failure) == len(restart) == len(resumed) == 1 and len(finished) == 2
    expected = weights(tmp_path / 'straight/iter_8.pth')
    actual = weights(killed_dir / 'iter_8.pth')
    difference = max((expected[k] - actual[k]).abs().max().item() for k in expected)
    print(f'max abs weight difference, killed and restarted vs uninterrupted: {difference}')
    assert difference == 0
    assert sorted(p.name for p in killed_dir.glob('*.pth')) == ['iter_8.pth']


def test_slurm_requeue_submits_a_requeueable_batch_job(tmp_path):
    """REQUEUE=1: sbatch --requeue around the same srun command (a stand-in sbatch records it)."""
    fake_bin = tmp_path / 'bin'
    fake_bin.mkdir()
    sbatch = fake_bin / 'sbatch'
    sbatch.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$SBATCH_ARGS"\n')
    sbatch.chmod(0o755)
    environment = dict(
        os.environ, PATH=f'{fake_bin}:{os.environ["PATH"]}', REQUEUE='1', GPUS='16',
        SBATCH_ARGS=str(tmp_path / 'args'), PYTHON='python3',
    )  # fmt: skip
    command = ['bash', 'tools/slurm_train.sh', 'gpu', 'mae', 'my config.py', '--work-dir', 'w d']
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    arguments = (tmp_path / 'args').read_text().splitlines()
    assert '--requeue' in arguments and '--ntasks=16' in arguments
    (wrapped,) = [a.removeprefix('--wrap=') for a in arguments if a.startswith('--wrap=')]
    words = shlex.split(wrapped)
    assert words[words.index('srun') + 1] == '--kill-on-bad-exit=1'
    train = words.index(str(ROOT / 'tools/train.py'))
    assert words[train + 1 :] == ['my config.py', '--launcher', 'slurm', '--work-dir', 'w d']


@pytest.fixture
def small_run(tmp_path):
    data_root = make_shapes_dataset(
        tmp_path / 'ADEChallengeData2016', ShapesSpec(num_train=8, num_val=1, short_side=64)
    )
    config = tmp_path / 'run.py'
    config.write_text(CONFIG.format(quick=str(QUICK), data_root=str(data_root)))
    return config


@pytest.mark.slow
def test_batch_of_one_is_one_line_before_any_process_starts(small_run, tmp_path):
    run = dist_train(
        small_run, tmp_path / 'work', 'b1', '--cfg-options', 'train_dataloader.batch_size=1'
    )
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 2, output[-3000:]
    assert output.strip().splitlines() == [
        'train.py: error: train_dataloader.batch_size=1 on 2 processes: '
        'decode_head.psp_modules.0 pool to 1x1 before a SyncBatchNorm, which cannot train on '
        'one value per channel ("Expected more than 1 value per channel when training"); '
        'set train_dataloader.batch_size=2 or more'
    ]


@pytest.mark.slow
def test_the_same_error_at_the_same_iteration_is_not_restarted_again(small_run, tmp_path):
    (tmp_path / 'planted_hook.py').write_text(PLANTED_HOOK)
    config = tmp_path / 'planted.py'
    config.write_text(
        f'_base_ = [{str(small_run)!r}]\n'
        "custom_imports = dict(imports=['mae_seg', 'planted_hook'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='NonFiniteLossHook'), dict(type='PlantedFailureHook')]\n"
    )
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get('PYTHONPATH')]))
    run = dist_train(config, tmp_path / 'work', uuid.uuid4().hex, PYTHONPATH=pythonpath)
    output, _ = run.communicate(timeout=300)
    print(output[-6000:])
    assert run.returncode == 2
    restarts = re.findall(
        r'^dist_train.sh: rank \d exited with status 1: restarting .*$', output, re.M
    )
    stops = re.findall(r'^train.py: error: .*$', output, re.M)
    assert len(restarts) == 1
    assert stops == [
        'train.py: error: ValueError: planted failure at iteration 1, as in the attempt before '
        'the restart: the error is deterministic; not restarting again'
    ]
    # The first attempt's tracebacks (one a failing rank) and nothing of the second.
    assert 1 <= output.count('Traceback (most recent call last)') <= 2
