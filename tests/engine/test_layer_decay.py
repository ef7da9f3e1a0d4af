"""Layer-wise lr decay against the official MAE rule and mmseg's constructor."""

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

from mae_seg.engine.optimizers.layer_decay import layer_id

register_all_modules(init_default_scope=True)

NUM_LAYERS = 4
BASE_LR, BASE_WD, RATE = 1e-4, 0.05, 0.65


def tiny_segmentor(backbone_type='MAEViT'):
    norm_cfg = dict(type='BN', requires_grad=True)
    cfg = dict(
        type='EncoderDecoder',
        backbone=dict(
            type=backbone_type,
            img_size=64,
            patch_size=16,
            embed_dims=64,
            num_layers=NUM_LAYERS,
            num_heads=2,
            out_indices=[0, 1, 2, 3],
            final_norm=True,
        ),
        neck=dict(type='Feature2Pyramid', embed_dim=64, rescales=[4, 2, 1, 0.5]),
        decode_head=dict(
            type='UPerHead',
            in_channels=[64] * 4,
            in_index=[0, 1, 2, 3],
            pool_scales=(1, 2),
            channels=32,
            num_classes=5,
            norm_cfg=norm_cfg,
        ),
        auxiliary_head=dict(
            type='FCNHead',
            in_channels=64,
            in_index=2,
            channels=16,
            num_convs=1,
            num_classes=5,
            norm_cfg=norm_cfg,
        ),
    )
    return MODELS.build(cfg)


def optim_cfg(constructor, **paramwise):
    return dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=BASE_LR, betas=(0.9, 0.999), weight_decay=BASE_WD),
        constructor=constructor,
        paramwise_cfg=dict(num_layers=NUM_LAYERS, layer_decay_rate=RATE, **paramwise),
    )


def official_rule(name, param):
    """facebookresearch/mae util/lr_decay.py, with mmseg's 'backbone.' prefix."""
    if name in ('backbone.cls_token', 'backbone.pos_embed', 'backbone.mask_token'):
        depth = 0
    elif name.startswith('backbone.patch_embed'):
        depth = 0
    elif name.startswith('backbone.layers.'):
        depth = int(name.split('.')[2]) + 1
    else:
        depth = NUM_LAYERS + 1
    no_decay = param.ndim == 1 or name.split('.')[-1] in (
        'pos_embed',
        'cls_token',
        'relative_position_bias_table',
    )
    return BASE_LR * RATE ** (NUM_LAYERS + 1 - depth), 0.0 if no_decay else BASE_WD


def settings_by_name(model, optim_wrapper):
    names = {id(p): n for n, p in model.named_parameters()}
    settings = {}
    for group in optim_wrapper.optimizer.param_groups:
        for param in group['params']:
            settings[names[id(param)]] = (group['lr'], group['weight_decay'])
    return settings


def test_every_parameter_follows_the_official_rule():
    model = tiny_segmentor()
    settings = settings_by_name(
        model, build_optim_wrapper(model, optim_cfg('MAELayerDecayOptimizerConstructor'))
    )
    assert set(settings) == {n for n, p in model.named_parameters() if p.requires_grad}
    for name, param in model.named_parameters():
        lr, wd = official_rule(name, param)
        assert settings[name] == (pytest.approx(lr), wd), name
    assert settings['backbone.layers.0.attn.qkv.weight'][0] == pytest.approx(BASE_LR * RATE**4)
    assert settings['decode_head.conv_seg.weight'] == (pytest.approx(BASE_LR), BASE_WD)


def test_same_lrs_as_mmseg_but_no_decay_on_positions_and_tables():
    ours_model = tiny_segmentor('MAEViT')
    mmseg_model = tiny_segmentor('MAE')
    ours = settings_by_name(
        ours_model, build_optim_wrapper(ours_model, optim_cfg('MAELayerDecayOptimizerConstructor'))
    )
    theirs = settings_by_name(
        mmseg_model, build_optim_wrapper(mmseg_model, optim_cfg('LayerDecayOptimizerConstructor'))
    )
    assert set(ours) == set(theirs)
    fixed = {'backbone.pos_embed', 'backbone.cls_token'} | {
        f'backbone.layers.{i}.attn.relative_position_bias_table' for i in range(NUM_LAYERS)
    }
    for name in ours:
        assert ours[name][0] == pytest.approx(theirs[name][0]), name
        if name in fixed:
            assert (ours[name][1], theirs[name][1]) == (0.0, BASE_WD), name
        else:
            assert ours[name][1] == theirs[name][1], name


def test_no_decay_names_are_configurable():
    model = tiny_segmentor()
    wrapper = build_optim_wrapper(
        model, optim_cfg('MAELayerDecayOptimizerConstructor', no_decay_names=['pos_embed'])
    )
    settings = settings_by_name(model, wrapper)
    assert settings['backbone.pos_embed'][1] == 0.0
    assert settings['backbone.cls_token'][1] == BASE_WD
    assert settings['backbone.layers.1.attn.relative_position_bias_table'][1] == BASE_WD


def test_mmseg_key_names_and_bad_keys():
    model = tiny_segmentor()
    cfg = optim_cfg('MAELayerDecayOptimizerConstructor')
    cfg['paramwise_cfg'] = dict(num_layers=NUM_LAYERS, decay_rate=RATE, decay_type='layer_wise')
    settings = settings_by_name(model, build_optim_wrapper(model, cfg))
    assert settings['backbone.patch_embed.projection.weight'][0] == pytest.approx(BASE_LR * RATE**5)
    for key, value in [('custom_keys', {'head': dict(lr_mult=10)}), ('norm_decay_mult', 0.0)]:
        cfg['paramwise_cfg'] = dict(num_layers=NUM_LAYERS, layer_decay_rate=RATE, **{key: value})
        with pytest.raises(ValueError, match=f'paramwise_cfg.{key} is not applied'):
            build_optim_wrapper(model, cfg)
    cfg['paramwise_cfg'] = dict(
        num_layers=NUM_LAYERS, layer_decay_rate=RATE, decay_type='stage_wise'
    )
    with pytest.raises(ValueError, match="decay_type 'stage_wise' is not supported"):
        build_optim_wrapper(model, cfg)
    cfg['paramwise_cfg'] = dict(num_layers=NUM_LAYERS, layer_decay_rate=RATE, decay_rat=RATE)
    with pytest.raises(ValueError, match=r"unknown paramwise_cfg keys \['decay_rat'\]"):
        build_optim_wrapper(model, cfg)
    cfg['paramwise_cfg'] = dict(layer_decay_rate=RATE)
    with pytest.raises(ValueError, match='num_layers'):
        build_optim_wrapper(model, cfg)


def test_frozen_parameters_are_left_out():
    model = tiny_segmentor()
    model.backbone.patch_embed.requires_grad_(False)
    settings = settings_by_name(
        model, build_optim_wrapper(model, optim_cfg('MAELayerDecayOptimizerConstructor'))
    )
    assert not any(name.startswith('backbone.patch_embed') for name in settings)


def test_one_compact_table_is_logged(mm_log):
    model = tiny_segmentor()
    build_optim_wrapper(model, optim_cfg('MAELayerDecayOptimizerConstructor'))
    messages = [m for m in mm_log if 'Layer-wise lr decay' in m]
    assert len(messages) == 1
    rows = messages[0].splitlines()[2:]
    # layers 0..5, each with a decayed and a non-decayed group
    assert len(rows) == 2 * (NUM_LAYERS + 2)
    assert not any('backbone.' in m for m in mm_log)


@pytest.mark.parametrize(
    'name, expected',
    [
        ('backbone.cls_token', 0),
        ('backbone.mask_token', 0),
        ('backbone.patch_embed.projection.bias', 0),
        ('backbone.layers.11.ffn.layers.1.weight', 12),
        ('backbone.ln1.weight', 13),
        ('neck.fpn1.0.weight', 13),
        ('auxiliary_head.conv_seg.bias', 13),
    ],
)
def test_layer_id(name, expected):
    assert layer_id(name, 12) == expected


def test_works_for_any_backbone_with_layers():
    model = tiny_segmentor()

    class Renamed(type(model.backbone)):
        pass

    model.backbone.__class__ = Renamed
    wrapper = build_optim_wrapper(model, optim_cfg('MAELayerDecayOptimizerConstructor'))
    assert len(wrapper.optimizer.param_groups) == 2 * (NUM_LAYERS + 2)
    assert torch.is_tensor(wrapper.optimizer.param_groups[0]['params'][0])
