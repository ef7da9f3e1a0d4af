"""AtomicCheckpointHook: a crash while saving leaves resume a complete checkpoint."""

import os
from collections import deque
from types import SimpleNamespace

import pytest
from mmengine.fileio import get_file_backend
from mmengine.hooks import CheckpointHook
from mmengine.logging import MessageHub
from mmengine.runner import find_latest_checkpoint

from mae_seg.engine import AtomicCheckpointHook


class Crash(RuntimeError):
    pass


def fake_runner(work_dir, crash_at):
    def save_checkpoint(out_dir, filename, *args, **kwargs):
        step = int(filename.split('_')[1].split('.')[0])
        with open(os.path.join(out_dir, filename), 'wb') as file:
            file.write(b'half a checkpoint')
            if step == crash_at:
                raise Crash(f'killed while writing {filename}')
            file.write(b' and the other half')

    hub = MessageHub.get_instance(f'atomic_{work_dir.name}_{crash_at}')
    return SimpleNamespace(work_dir=str(work_dir), message_hub=hub, save_checkpoint=save_checkpoint)


def save_three(hook_type, work_dir):
    """Saves at steps 1, 2 (killed while writing) and returns what resume would load."""
    hook = hook_type(interval=1, by_epoch=False, max_keep_ckpts=1)
    hook.out_dir = str(work_dir)
    hook.file_backend = get_file_backend(str(work_dir))
    hook.keep_ckpt_ids = deque([], 1) if hook_type is CheckpointHook else deque()
    runner = fake_runner(work_dir, crash_at=2)
    hook._save_checkpoint_with_step(runner, 1, {})
    with pytest.raises(Crash):
        hook._save_checkpoint_with_step(runner, 2, {})
    return find_latest_checkpoint(str(work_dir))


def test_crash_while_saving_leaves_the_previous_checkpoint(tmp_path):
    latest = save_three(AtomicCheckpointHook, tmp_path)
    assert latest == str(tmp_path / 'iter_1.pth')
    assert (tmp_path / 'iter_1.pth').read_bytes() == b'half a checkpoint and the other half'
    assert not (tmp_path / 'iter_2.pth').exists()  # only iter_2.pth.partial


def test_mmengine_hook_leaves_nothing_to_resume_from(tmp_path):
    """The behaviour replaced: the old checkpoint is deleted before the new one is written."""
    latest = save_three(CheckpointHook, tmp_path)
    assert latest == str(tmp_path / 'iter_1.pth') and not os.path.exists(latest)


def test_old_checkpoints_are_deleted_after_the_new_one_is_complete(tmp_path):
    hook = AtomicCheckpointHook(interval=1, by_epoch=False, max_keep_ckpts=2)
    hook.out_dir, hook.keep_ckpt_ids = str(tmp_path), deque()
    runner = fake_runner(tmp_path, crash_at=None)
    for step in (1, 2, 3, 4):
        hook._save_checkpoint_with_step(runner, step, {})
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_3.pth', 'iter_4.pth']
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'iter_4.pth')
    assert runner.message_hub.get_info('keep_ckpt_ids') == [3, 4]
