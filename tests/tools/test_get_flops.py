"""tools/analysis/get_flops.py: attention counted, checked against mmseg's MAE."""

import copy

import pytest
import torch
from get_flops import count_complexity, main
from mmengine.config import Config
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

import mae_seg  # noqa: F401  (registers MAEViT)

TINY_SEGMENTOR = """
custom_imports = dict(imports=['mae_seg'], allow_failed_imports=False)
crop_size = (64, 64)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', size=crop_size),
    backbone=dict(
        type='MAEViT', img_size=crop_size, embed_dims=64, num_layers=4, num_heads=2,
        out_indices=(0, 1, 2, 3), norm_cfg=dict(type='LN', eps=1e-6),
    ),
    neck=dict(type='Feature2Pyramid', embed_dim=64, rescales=[4, 2, 1, 0.5]),
    decode_head=dict(
        type='UPerHead', in_channels=[64] * 4, in_index=[0, 1, 2, 3], pool_scales=(1, 2),
        channels=16, dropout_ratio=0.1, num_classes=5, norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0),
    ),
    auxiliary_head=dict(
        type='FCNHead', in_channels=64, channels=8, num_convs=1, concat_input=False,
        in_index=2, num_classes=5, norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4),
    ),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'),
)
"""


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / 'tiny.py'
    path.write_text(TINY_SEGMENTOR)
    return path


def build(model_cfg, backbone_type, img_size):
    register_all_modules()
    model_cfg = copy.deepcopy(model_cfg)
    model_cfg['backbone'].update(type=backbone_type, img_size=img_size)
    return MODELS.build(model_cfg)


def test_attention_is_counted_as_in_mmseg_mae_written_out(config_file):
    """mmseg's MAE multiplies q, k and v with plain matrix products, which every counter
    sees; MAEViT's fused attention must count the same."""
    cfg = Config.fromfile(str(config_file))
    inputs = torch.randn(1, 3, 64, 96)
    # mmseg's MAE runs at its img_size only.
    ours = count_complexity(build(cfg.model, 'MAEViT', (64, 96)), inputs)
    mmseg = count_complexity(build(cfg.model, 'MAE', (64, 96)), inputs)
    assert ours.flops == mmseg.flops
    assert ours.params == mmseg.params
    tokens, dims, layers = 1 + 4 * 6, 64, 4
    # q k^T and the weights times v, 2 FLOPs per multiply-add, all heads together.
    assert ours.attention_flops == layers * 2 * (2 * tokens * tokens * dims)
    # The decode head's forward is called directly, past the module hooks.
    assert set(ours.flops_by_module) == {'backbone', 'neck', 'other'}
    assert ours.flops_by_module['other'] > 0
    assert ours.flops_by_module['backbone'] > ours.attention_flops
    assert sum(ours.flops_by_module.values()) == ours.flops
    assert 'auxiliary_head' in ours.params_by_module  # built, but not in the tensor forward


def test_command_line(config_file, capsys):
    assert main([str(config_file), '--shape', '64', '80']) == 0
    out = capsys.readouterr().out
    assert 'input shape: 1x3x64x80' in out
    assert 'of which attention' in out
    assert main([str(config_file.parent / 'missing.py')]) == 2
    assert 'get_flops.py: error: config' in capsys.readouterr().err
    assert main([str(config_file), '--shape', '1', '2', '3']) == 2
    assert 'give H or H W' in capsys.readouterr().err
