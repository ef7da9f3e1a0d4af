"""A tiny segmentor of the quick-start kind with every weight random (relative position
tables too, which MAEViT starts at zero), a shapes data set, and its ONNX export."""

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / 'configs/quick_start/mae-tiny_upernet_2xb4-400_shapes-128x128.py'

TINY_CONFIG = """
_base_ = [{quick!r}]
model = dict(
    pretrained=None,
    backbone=dict(embed_dims=64, drop_path_rate=0.0),
    neck=dict(embed_dim=64),
    decode_head=dict(in_channels=[64] * 4, channels=16, dropout_ratio=0.0),
    auxiliary_head=dict(in_channels=64, channels=8, dropout_ratio=0.0),
)
test_dataloader = dict(dataset=dict(data_root={data_root!r}))
"""


# Position parameters and the classifier far from their initial values, so that the position
# fitting and the class decision matter; every other weight as initialised.
FAR_FROM_INIT = {
    r'relative_position_bias_table|pos_embed$': 1.0,
    r'^decode_head\.conv_seg': 3.0,
}


@pytest.fixture(scope='session')
def tiny_segmentor(tmp_path_factory, randomize):
    """``(config, checkpoint, data_root)``: the quick start's model at 64 dims (128x128
    crops, 8x8 tokens), random weights; 4 validation images of shapes at ``data_root``."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    from quick_start_kit import ShapesSpec, make_shapes_dataset

    tmp = tmp_path_factory.mktemp('deploy')
    data_root = make_shapes_dataset(
        tmp / 'ADEChallengeData2016', ShapesSpec(num_train=1, num_val=4, short_side=64)
    )
    config = tmp / 'tiny.py'
    config.write_text(TINY_CONFIG.format(quick=str(QUICK), data_root=str(data_root)))
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(config)).model)
    model.init_weights()
    randomize(model, std=None, stds=FAR_FROM_INIT, shifts={})
    checkpoint = tmp / 'iter_400.pth'
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), checkpoint)
    return config, checkpoint, data_root


@pytest.fixture(scope='session')
def tiny_wrapped(tiny_segmentor):
    """The tiny segmentor loaded as the export tool loads it, wrapped for export."""
    from mae_seg.apis.inference import build_segmentor
    from mae_seg.deploy import SegmentorForExport

    config, checkpoint, _ = tiny_segmentor
    segmentor = build_segmentor(str(config), str(checkpoint), mode='whole')
    return segmentor, SegmentorForExport(segmentor).eval()


@pytest.fixture(scope='session')
def tiny_onnx(tiny_wrapped, tmp_path_factory):
    """The tiny segmentor exported with dynamic batch and size at its own 128x128 (8x8
    tokens), the size where a fit that compares grids would fix the graph."""
    from mae_seg.deploy import export_onnx

    path = tmp_path_factory.mktemp('onnx') / 'tiny.onnx'
    export_onnx(tiny_wrapped[1], path, (128, 128), dynamic=True)
    return path
