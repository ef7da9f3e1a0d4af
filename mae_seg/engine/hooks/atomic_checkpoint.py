"""A CheckpointHook after which ``--resume`` always finds a complete checkpoint.

mmengine 0.10's ``CheckpointHook`` deletes the oldest kept checkpoint before it writes the
new one, writes the new one in place and then points ``last_checkpoint`` at it: a process
killed while saving (preemption, a dead node, an out-of-memory kill) leaves a truncated
file, or with ``max_keep_ckpts=1`` nothing at all, and ``last_checkpoint`` naming a file
that is gone.
"""

from __future__ import annotations

import os
import os.path as osp
from collections import deque

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmseg.registry import HOOKS

__all__ = ['AtomicCheckpointHook', 'replace_atomically']

PARTIAL_SUFFIX = '.partial'


def _fsync(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def replace_atomically(source: str, destination: str) -> None:
    """Move a fully written ``source`` onto ``destination``: readers see old or new, whole."""
    _fsync(source)
    os.replace(source, destination)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` that writes ``iter_N.pth.partial``, renames it to ``iter_N.pth``,
    then updates ``last_checkpoint`` (also by rename), and only then deletes checkpoints
    beyond ``max_keep_ckpts``. At every moment ``last_checkpoint`` names a complete file.

    Local work directories only; with ``backend_args`` (a remote store) it saves as
    ``CheckpointHook`` does. Arguments are those of ``CheckpointHook``::

        default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
    """

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        if self.backend_args is not None or self.file_client_args is not None:
            super()._save_checkpoint_with_step(runner, step, meta)
            return
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = osp.join(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        if self.max_keep_ckpts > 0:
            if not self.keep_ckpt_ids or self.keep_ckpt_ids[-1] != step:
                self.keep_ckpt_ids.append(step)
            kept = list(self.keep_ckpt_ids)[-self.max_keep_ckpts :]
            runner.message_hub.update_info('keep_ckpt_ids', kept)
        runner.save_checkpoint(
            self.out_dir,
            filename + PARTIAL_SUFFIX,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            **self.args,
        )
        if is_main_process():
            replace_atomically(self.last_ckpt + PARTIAL_SUFFIX, self.last_ckpt)
            pointer = osp.join(runner.work_dir, 'last_checkpoint')
            with open(pointer + PARTIAL_SUFFIX, 'w') as file:
                file.write(self.last_ckpt)
            replace_atomically(pointer + PARTIAL_SUFFIX, pointer)
        self._delete_old_checkpoints()

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if self.max_keep_ckpts > 0:
            # mmengine's deque has maxlen: an id it drops would never be deleted.
            self.keep_ckpt_ids = deque(self.keep_ckpt_ids)

    def _delete_old_checkpoints(self) -> None:
        """Delete the oldest kept checkpoints, now that a newer one is complete."""
        while self.max_keep_ckpts > 0 and len(self.keep_ckpt_ids) > self.max_keep_ckpts:
            old = osp.join(self.out_dir, self.filename_tmpl.format(self.keep_ckpt_ids.popleft()))
            if is_main_process() and osp.isfile(old):
                os.remove(old)
