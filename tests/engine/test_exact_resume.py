"""Interrupted and resumed runs of the tiny quick-start model, in process on the CPU."""

from pathlib import Path

import pytest
import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS, TRANSFORMS
from quick_start_kit import ShapesSpec, make_shapes_dataset

from mae_seg.runner import load_config, setup_train_config, train

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / 'configs/quick_start/mae-tiny_upernet_2xb4-400_shapes-128x128.py'

# Drop path 0.1 (the quick start's) and dropout 0.1 in both heads (mmseg's): stochastic layers.
CONFIG = """
_base_ = [{quick!r}]
data_root = {data_root!r}
model = dict(pretrained=None)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=2, end=6),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='CountLoads'),
    dict(type='RandomResize', scale=(128, 64), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(64, 64), cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=6, val_interval=3)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=3, max_keep_ckpts=-1))
custom_hooks = [dict(type='NonFiniteLossHook'), dict(type='RecordBatchesHook')]
"""


@TRANSFORMS.register_module(force=True)
class CountLoads:
    """Counts the training samples prepared in this process."""

    count = 0

    def __call__(self, results):
        CountLoads.count += 1
        return results


@HOOKS.register_module(force=True)
class RecordBatchesHook(Hook):
    """What each iteration trained on: files, augmentation and the exact pixels."""

    batches: dict[int, tuple] = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        samples = data_batch['data_samples']
        RecordBatchesHook.batches[runner.iter + 1] = (
            tuple(Path(s.img_path).name for s in samples),
            tuple((s.flip, tuple(s.img_shape)) for s in samples),
            tuple(int(image.long().sum()) for image in data_batch['inputs']),
        )


@pytest.fixture(scope='module')
def config(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('resume')
    data_root = make_shapes_dataset(
        tmp / 'ADEChallengeData2016', ShapesSpec(num_train=8, num_val=2, short_side=64)
    )
    path = tmp / 'tiny_resume.py'
    path.write_text(CONFIG.format(quick=str(QUICK), data_root=str(data_root)))
    return path


def run(config, work_dir, resume=False, **options):
    """Train in this process; returns the batches seen and the samples prepared here."""
    RecordBatchesHook.batches, CountLoads.count = {}, 0
    cfg = load_config(str(config), options)
    setup_train_config(cfg, str(config), work_dir=str(work_dir), resume=resume)
    cfg.experiment_name = work_dir.name + ('_resumed' if resume else '')
    train(cfg)
    return dict(RecordBatchesHook.batches), CountLoads.count


def weights(path):
    return torch.load(path, weights_only=True)['state_dict']


def max_abs_difference(a, b):
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


@pytest.fixture(scope='module')
def straight(config, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('straight')
    batches, _ = run(config, work_dir)
    return work_dir, batches


@pytest.mark.slow
@pytest.mark.parametrize('num_workers', [0, 2])
def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(
    config, straight, tmp_path, num_workers
):
    """Drop path 0.1, dropout, validation at the interruption, any number of workers: 0."""
    straight_dir, straight_batches = straight
    loader = {'train_dataloader.num_workers': num_workers}
    if num_workers:
        loader['train_dataloader.persistent_workers'] = True
    run(config, tmp_path, **loader, **{'train_cfg.max_iters': 3})
    assert not (tmp_path / 'iter_6.pth').exists()
    batches, loaded = run(config, tmp_path, resume=True, **loader)

    assert batches == {i: straight_batches[i] for i in (4, 5, 6)}
    if num_workers == 0:
        assert loaded == 3 * 2  # only the batches of iterations 4-6, none skipped
    difference = max_abs_difference(
        weights(straight_dir / 'iter_6.pth'), weights(tmp_path / 'iter_6.pth')
    )
    print(f'max abs weight difference, resumed vs uninterrupted: {difference}')
    assert difference == 0


@pytest.mark.slow
def test_mmengine_loop_reloads_what_was_trained_and_draws_differently(config, straight, tmp_path):
    """The baseline this loop replaces, measured the same way."""
    straight_dir, _ = straight
    mmengine_loop = {'train_cfg.type': 'IterBasedTrainLoop'}
    run(config, tmp_path, **mmengine_loop, **{'train_cfg.max_iters': 3})
    _, loaded = run(config, tmp_path, resume=True, **mmengine_loop)
    assert loaded == 6 * 2  # iterations 1-3 prepared again and thrown away
    difference = max_abs_difference(
        weights(straight_dir / 'iter_6.pth'), weights(tmp_path / 'iter_6.pth')
    )
    assert difference > 0
