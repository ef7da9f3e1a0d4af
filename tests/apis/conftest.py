"""A tiny quick-start config (4 layers, 64 dims, 64x64) to check weights and values against."""

from pathlib import Path

import pytest
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / 'configs/quick_start/mae-tiny_upernet_2xb4-400_shapes-128x128.py'

TINY = """
_base_ = [{quick!r}]
crop_size = (64, 64)
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    backbone=dict(img_size=crop_size, embed_dims=64),
    neck=dict(embed_dim=64),
    decode_head=dict(in_channels=[64, 64, 64, 64], channels=16),
    auxiliary_head=dict(in_channels=64, channels=8),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(43, 43)),
)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
"""


@pytest.fixture
def tiny_config(tmp_path):
    """``make(num_classes=5, **cfg_options)``: the config, its work_dir in ``tmp_path``."""

    def make(num_classes=5, **options):
        return _tiny_config(tmp_path, num_classes, **options)

    return make


def _tiny_config(tmp_path, num_classes, **options):
    path = tmp_path / f'tiny_{num_classes}.py'
    path.write_text(TINY.format(quick=str(QUICK)))
    cfg = Config.fromfile(str(path))
    cfg.merge_from_dict(
        {
            'model.decode_head.num_classes': num_classes,
            'model.auxiliary_head.num_classes': num_classes,
            **options,
        }  # fmt: skip
    )
    cfg.work_dir = str(tmp_path / 'work')
    return cfg
