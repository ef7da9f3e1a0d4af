"""The own-data configs, and mmseg's own data-set bases composed with our model recipe."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS

import mae_seg  # noqa: F401 - registers our classes
from mae_seg.datasets.dataset_check import shared_setting_problems

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / 'configs/_base_/mae-base_upernet_amp-160k.py'
OWN = ROOT / 'configs/mae/mae-base_upernet_8xb2-amp-160k_own-data-512x512.py'
TINY_OWN = ROOT / 'configs/quick_start/mae-tiny_upernet_1xb4-400_own-data-128x128.py'
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')


def heads(cfg):
    return cfg.model.decode_head, cfg.model.auxiliary_head


@pytest.mark.parametrize('config', [OWN, TINY_OWN], ids=['vit-b', 'tiny'])
def test_own_data_config_takes_every_class_setting_from_the_data_set_base(config):
    cfg = Config.fromfile(str(config))
    classes = cfg.train_dataloader.dataset.metainfo.classes
    assert cfg.num_classes == len(classes) == 2
    for head in heads(cfg):
        assert (head.num_classes, head.ignore_index) == (2, cfg.ignore_index)
    for key in LOADERS:
        dataset = cfg[key].dataset
        assert dataset.type == 'BaseSegDataset'
        assert dataset.metainfo == dict(classes=classes, palette=cfg.palette)
        assert dataset.reduce_zero_label is cfg.reduce_zero_label
        assert dataset.ignore_index == cfg.ignore_index
    assert cfg.val_evaluator.ignore_index == cfg.ignore_index
    assert shared_setting_problems(cfg, 'train_dataloader') == []


def test_editing_the_class_list_once_changes_num_classes_everywhere(tmp_path):
    """The class list is typed in one file; the heads follow it."""
    configs = tmp_path / 'configs'
    shutil.copytree(ROOT / 'configs', configs)
    base = configs / '_base_/datasets/own_data.py'
    text = base.read_text()
    edited = text.replace(
        "classes = ('background', 'foreground')", "classes = ('sky', 'road', 'car', 'person')"
    ).replace('palette = [[0, 0, 0], [220, 20, 60]]', 'palette = []')
    edited = edited.replace('ignore_index = 255', 'ignore_index = 254')
    assert edited != text
    base.write_text(edited)
    cfg = Config.fromfile(str(configs / OWN.relative_to(ROOT / 'configs')))
    assert [head.num_classes for head in heads(cfg)] == [4, 4]
    assert [head.ignore_index for head in heads(cfg)] == [254, 254]
    assert cfg.val_evaluator.ignore_index == 254


def test_ade20k_recipe_still_reads_as_before():
    """Its model and schedule now come from the data-less base: same values as published."""
    cfg = Config.fromfile(
        str(ROOT / 'configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py')
    )
    assert [head.num_classes for head in heads(cfg)] == [150, 150]
    assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.data_preprocessor.size == cfg.crop_size == (512, 512)
    assert cfg.tta_pipeline[1].transforms[0][0].type == 'MinSizeResize'


@pytest.mark.parametrize(
    ('dataset_base', 'dataset_type', 'num_classes'),
    [
        ('cityscapes.py', 'CityscapesDataset', 19),
        ('potsdam.py', 'PotsdamDataset', 6),
        ('loveda.py', 'LoveDADataset', 7),
    ],
)
def test_mmseg_data_set_bases_compose_with_our_recipe(
    tmp_path, dataset_base, dataset_type, num_classes
):
    config = tmp_path / 'composed.py'
    config.write_text(
        f'_base_ = [{str(RECIPE)!r}, "mmseg::_base_/datasets/{dataset_base}"]\n'
        f'model = dict(decode_head=dict(num_classes={num_classes}), '
        f'auxiliary_head=dict(num_classes={num_classes}))\n'
    )
    cfg = Config.fromfile(str(config))
    assert cfg.train_dataloader.dataset.type == dataset_type
    assert cfg.model.backbone.type == 'MAEViT'
    assert cfg.optim_wrapper.constructor == 'MAELayerDecayOptimizerConstructor'
    classes = DATASETS.get(dataset_type).METAINFO['classes']
    assert len(classes) == num_classes
    assert shared_setting_problems(cfg, 'train_dataloader') == []
    # The check would catch a composed config that forgot the class count.
    cfg.model.decode_head.num_classes = cfg.model.auxiliary_head.num_classes = 150
    [problem] = shared_setting_problems(cfg, 'train_dataloader')
    assert f'lists {num_classes} classes but model.decode_head.num_classes=150' in str(problem)
