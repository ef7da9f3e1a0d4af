"""An iteration-based training loop that resumes at once and exactly where it stopped.

mmengine 0.10's ``IterBasedTrainLoop`` resumes by loading and discarding every batch
already trained on (at iteration 100k of the ADE20K recipe, 1.6M images) and does not save
the random generators, so drop path and data augmentation take other draws after a resume.
:class:`ExactResumeIterBasedTrainLoop` starts the sampler at the first untrained sample and
puts every rank's generators back where they were when the checkpoint was written; an
interrupted run then ends with the weights of an uninterrupted one. In a config::

    train_cfg = dict(type='ExactResumeIterBasedTrainLoop')
"""

from __future__ import annotations

import copy
import logging

from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.loops import BaseLoop
from mmengine.runner.utils import calc_dynamic_intervals
from mmseg.registry import HOOKS, LOOPS

from ..compat import allow_mmengine_checkpoints
from ..datasets.rng_state import capture_rng_states, forked_rng, restore_rng_states
from ..datasets.samplers import PositionSeededDataset, ResumableInfiniteSampler

__all__ = ['ExactResumeHook', 'ExactResumeIterBasedTrainLoop', 'resumable_dataloader_cfg']

SAMPLERS_TO_REPLACE = ('InfiniteSampler', 'ResumableInfiniteSampler')
CHECKPOINT_KEY = 'exact_resume'


def resumable_dataloader_cfg(dataloader_cfg: dict) -> dict:
    """The train dataloader config with a sampler that can start anywhere and per-position
    seeded samples (:mod:`mae_seg.datasets.resumable`).

    Raises:
        ValueError: the sampler is not mmengine's ``InfiniteSampler`` (or ours), whose
            order the replacement reproduces.
    """
    cfg = copy.deepcopy(dataloader_cfg)
    sampler = dict(cfg.get('sampler') or {})
    sampler_type = sampler.get('type')
    name = sampler_type.split('.')[-1] if isinstance(sampler_type, str) else None
    if name not in SAMPLERS_TO_REPLACE and sampler_type is not ResumableInfiniteSampler:
        raise ValueError(
            f'ExactResumeIterBasedTrainLoop needs train_dataloader.sampler.type='
            f"'InfiniteSampler' (mmseg's default for iteration-based training), got "
            f'{sampler_type!r}'
        )
    sampler['type'] = ResumableInfiniteSampler
    cfg['sampler'] = sampler
    cfg['dataset'] = dict(type=PositionSeededDataset, dataset=cfg['dataset'])
    return cfg


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Writes what an exact resume needs into each checkpoint and reads it back.

    ``checkpoint['exact_resume']`` holds the generator states of every rank, taken after the
    iteration the checkpoint ends (gathered before ``CheckpointHook``, which runs later and
    writes on rank 0 only), the sampler's seed and the position of the next sample. The
    :class:`ExactResumeIterBasedTrainLoop` that registers this hook applies them.
    """

    priority = 'LOW'  # after_train_iter before CheckpointHook ('VERY_LOW')

    def __init__(self) -> None:
        self.gathered_states: list[dict] | None = None
        self.loaded: dict | None = None

    @staticmethod
    def _checkpoint_due(runner) -> bool:
        """Whether a ``CheckpointHook`` saves after this iteration (its own rule)."""
        for hook in runner.hooks:
            if isinstance(hook, CheckpointHook) and not hook.by_epoch:
                if hook.every_n_train_iters(runner, hook.interval, hook.save_begin):
                    return True
                if hook.save_last and hook.is_last_train_iter(runner):
                    return True
        return False

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._checkpoint_due(runner):
            self.gathered_states = all_gather_object(capture_rng_states())

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        states = self.gathered_states
        if states is None or len(states) != get_dist_info()[1]:
            states = None
        loop = runner.train_loop
        checkpoint[CHECKPOINT_KEY] = {
            'iter': checkpoint['meta']['iter'],
            'rng_states': states,
            'sampler_seed': loop.sampler.seed,
            'next_sample': checkpoint['meta']['iter'] * loop.samples_per_iteration,
        }
        self.gathered_states = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self.loaded = checkpoint.get(CHECKPOINT_KEY)


@LOOPS.register_module()
class ExactResumeIterBasedTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` whose resume loads no skipped batch and repeats the random draws.

    Differences from mmengine's loop:

    - the train dataloader's ``InfiniteSampler`` becomes :class:`ResumableInfiniteSampler`
      (same order) and its data set a :class:`PositionSeededDataset`, so that resuming
      starts the sampler at the next sample instead of loading the skipped ones;
    - the dataloader is iterated from :meth:`run`, after the checkpoint is loaded (mmengine
      starts it, and its workers, when the loop is built);
    - it registers :class:`ExactResumeHook`, which saves every rank's generator states,
      and restores them before the first resumed iteration;
    - validation runs with forked generators, so it does not shift the training draws
      (and a run validated every 100 iterations trains as one validated never).

    Args are those of ``IterBasedTrainLoop``.
    """

    def __init__(
        self,
        runner,
        dataloader: dict,
        max_iters: int,
        val_begin: int = 1,
        val_interval: int = 1000,
        dynamic_intervals: list[tuple[int, int]] | None = None,
    ) -> None:
        # The runner resumes after building the loop; torch >= 2.6 refuses mmengine's
        # checkpoints without the allow-list (mmseg's own tools/train.py sets none).
        allow_mmengine_checkpoints()
        if isinstance(dataloader, dict):
            dataloader = resumable_dataloader_cfg(dataloader)
        # Not IterBasedTrainLoop.__init__: it starts iterating the dataloader right away.
        BaseLoop.__init__(self, runner, dataloader)
        self._max_iters = int(max_iters)
        if self._max_iters != max_iters:
            raise ValueError(f'train_cfg.max_iters must be an integer, got {max_iters}')
        self._max_epochs = 1
        self._epoch = 0
        self._iter = 0
        self.val_begin = val_begin
        self.val_interval = val_interval
        self.stop_training = False
        self.runner.visualizer.dataset_meta = self.dataloader.dataset.metainfo
        self.dynamic_milestones, self.dynamic_intervals = calc_dynamic_intervals(
            self.val_interval, dynamic_intervals
        )
        self.sampler = self.dataloader.sampler
        if not isinstance(self.sampler, ResumableInfiniteSampler):
            raise ValueError(
                'ExactResumeIterBasedTrainLoop builds its own dataloader; pass a config, '
                f'not a {type(self.dataloader).__name__}'
            )
        self.dataloader.dataset.seed = self.sampler.seed
        self.resume_hook = ExactResumeHook()
        runner.register_hook(self.resume_hook)

    @property
    def samples_per_iteration(self) -> int:
        """Samples one iteration takes from the stream, over all ranks."""
        return self.dataloader.batch_size * self.sampler.world_size

    def _resume_state(self) -> dict | None:
        """What the loaded checkpoint saved for this iteration (not a ``load_from``)."""
        state = self.resume_hook.loaded
        if self._iter == 0 or state is None or state['iter'] != self._iter:
            return None
        return state

    def _position_sampler(self) -> list[dict] | None:
        """Start the sampler at the first untrained sample; the rank states to restore."""
        state = self._resume_state()
        if state is None:
            self.sampler.start_at(self._iter * self.samples_per_iteration)
            if self._iter > 0:
                print_log(
                    f'Resumed at iteration {self._iter} from a checkpoint without generator '
                    'states (not written by ExactResumeIterBasedTrainLoop): the data order '
                    'continues, random draws do not',
                    logger='current',
                    level=logging.WARNING,
                )
            return None
        self.sampler.seed = self.dataloader.dataset.seed = state['sampler_seed']
        self.sampler.start_at(state['next_sample'])
        print_log(
            f'Resumed at iteration {self._iter}: sampler at sample {state["next_sample"]} '
            'without loading the ones before it, random generators of every rank restored',
            logger='current',
        )
        return state['rng_states']

    def _restore_rank_rng(self, rng_states: list[dict] | None) -> None:
        if rng_states is None:
            if self._resume_state() is not None:
                print_log(
                    'The checkpoint was saved without the generator states of every rank '
                    '(not by CheckpointHook): random draws continue differently',
                    logger='current',
                    level=logging.WARNING,
                )
            return
        rank, world_size = get_dist_info()
        if len(rng_states) != world_size:
            print_log(
                f'The checkpoint holds the generator states of {len(rng_states)} processes '
                f'and this run has {world_size}: random draws continue differently',
                logger='current',
                level=logging.WARNING,
            )
            return
        restore_rng_states(rng_states[rank])

    def run(self):
        """Train from ``self.iter`` (0, or where the resumed checkpoint ended) to ``max_iters``."""
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        rng_states = self._position_sampler()
        self.dataloader_iterator = iter(self.dataloader)
        self._restore_rank_rng(rng_states)
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            self.run_iter(next(self.dataloader_iterator))
            self._decide_current_val_interval()
            if (
                self.runner.val_loop is not None
                and self._iter >= self.val_begin
                and (self._iter % self.val_interval == 0 or self._iter == self._max_iters)
            ):
                with forked_rng():
                    self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model
