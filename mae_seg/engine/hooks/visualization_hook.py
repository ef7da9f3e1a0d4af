"""mmseg's visualization hook, made usable in a test run without training data."""

from __future__ import annotations

from collections.abc import Sequence

from mmseg.engine.hooks import SegVisualizationHook
from mmseg.registry import HOOKS

__all__ = ['TestSegVisualizationHook']


class _RunnerWithoutTrainLoop:
    """The runner as the hook sees it in a test run: ``iter`` is 0 while no training loop
    has been built, mmengine's own rule for the ``iter`` of its test log tags."""

    def __init__(self, runner) -> None:
        self._runner = runner

    def __getattr__(self, name: str):
        return getattr(self._runner, name)

    @property
    def iter(self) -> int:
        return 0


@HOOKS.register_module()
class TestSegVisualizationHook(SegVisualizationHook):
    """``SegVisualizationHook`` that paints test predictions without a training loop.

    mmseg's hook passes ``runner.iter`` as the image step, and in a test run asking for it
    builds the training loop, with its dataloader over the training data root: a test with
    only the test data at hand crashed after the first painted image. The step is 0 there
    (what ``runner.iter`` gives before training), so the files are named as mmseg names
    them. ``tools/test.py --show/--show-dir`` uses it in place of ``SegVisualizationHook``.
    """

    def after_test_iter(
        self, runner, batch_idx: int, data_batch: dict | None = None, outputs: Sequence = ()
    ) -> None:
        if isinstance(runner._train_loop, dict) or runner._train_loop is None:
            runner = _RunnerWithoutTrainLoop(runner)
        super().after_test_iter(runner, batch_idx, data_batch, outputs)
