"""Layer-wise lr decay against the official MAE rule and mmseg's constructor."""

import pytest
import torch
import torch.distributed as dist
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules
from torch import nn

from mae_seg.engine import CPUDistributedDataParallel
from mae_seg.engine.optimizers.layer_decay import backbone_depth, layer_id

register_all_modules(init_default_scope=True)

NUM_LAYERS = 4
BASE_LR, BASE_WD, RATE = 1e-4, 0.05, 0.65


def tiny_segmentor(backbone_type='MAEViT', num_layers=NUM_LAYERS):
    norm_cfg = dict(type='BN', requires_grad=True)
    cfg = dict(
        type='EncoderDecoder',
        backbone=dict(
            type=backbone_type,
            img_size=64,
            patch_size=16,
            embed_dims=64,
            num_layers=num_layers,
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
    """Ours reads the depth from the model; mmseg's needs ``num_layers``."""
    if constructor == 'LayerDecayOptimizerConstructor':
        paramwise.setdefault('num_layers', NUM_LAYERS)
    return dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=BASE_LR, betas=(0.9, 0.999), weight_decay=BASE_WD),
        constructor=constructor,
        paramwise_cfg=dict(layer_decay_rate=RATE, **paramwise),
    )


def official_rule(name, param, num_layers=NUM_LAYERS):
    """facebookresearch/mae util/lr_decay.py, with mmseg's 'backbone.' prefix."""
    if name in ('backbone.cls_token', 'backbone.pos_embed', 'backbone.mask_token'):
        depth = 0
    elif name.startswith('backbone.patch_embed'):
        depth = 0
    elif name.startswith('backbone.layers.'):
        depth = int(name.split('.')[2]) + 1
    else:
        depth = num_layers + 1
    no_decay = param.ndim == 1 or name.split('.')[-1] in (
        'pos_embed',
        'cls_token',
        'relative_position_bias_table',
    )
    return BASE_LR * RATE ** (num_layers + 1 - depth), 0.0 if no_decay else BASE_WD


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
        cfg['paramwise_cfg'] = dict(layer_decay_rate=RATE, **{key: value})
        with pytest.raises(ValueError, match=f'paramwise_cfg.{key} is not applied'):
            build_optim_wrapper(model, cfg)
    cfg['paramwise_cfg'] = dict(
        num_layers=NUM_LAYERS, layer_decay_rate=RATE, decay_type='stage_wise'
    )
    with pytest.raises(ValueError, match="decay_type 'stage_wise' is not supported"):
        build_optim_wrapper(model, cfg)
    cfg['paramwise_cfg'] = dict(layer_decay_rate=RATE, decay_rat=RATE)
    with pytest.raises(ValueError, match=r"unknown paramwise_cfg keys \['decay_rat'\]"):
        build_optim_wrapper(model, cfg)
    cfg['paramwise_cfg'] = dict(num_layers=NUM_LAYERS)
    with pytest.raises(ValueError, match='needs paramwise_cfg.layer_decay_rate'):
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


# -- the depth, read from the model ---------------------------------------------------------

OURS = 'MAELayerDecayOptimizerConstructor'


def groups_of(optim_wrapper):
    """Every param group as a dict, its parameters by identity: comparable across builds."""
    return [
        {**group, 'params': [id(param) for param in group['params']]}
        for group in optim_wrapper.optimizer.param_groups
    ]


@pytest.mark.parametrize('backbone_type', ['MAEViT', 'MAE', 'BEiT'])
def test_depth_is_read_from_the_segmentor(backbone_type, mm_log):
    model = tiny_segmentor(backbone_type, num_layers=6)
    assert backbone_depth(model) == 6
    settings = settings_by_name(model, build_optim_wrapper(model, optim_cfg(OURS)))
    assert set(settings) == {name for name, _ in model.named_parameters()}
    for name, param in model.named_parameters():
        lr, wd = official_rule(name, param, num_layers=6)
        assert settings[name] == (pytest.approx(lr), wd), name
    assert settings['backbone.layers.0.attn.qkv.weight'][0] == pytest.approx(BASE_LR * RATE**6)
    assert any(message.startswith('Layer-wise lr decay: rate 0.65, 6 layers') for message in mm_log)


def test_depth_is_read_from_a_bare_backbone():
    backbone = tiny_segmentor(num_layers=6).backbone
    assert backbone_depth(backbone) == 6
    settings = settings_by_name(backbone, build_optim_wrapper(backbone, optim_cfg(OURS)))
    # Named as in a segmentor: the same rule as for 'backbone.<name>'.
    for name, param in backbone.named_parameters():
        lr, wd = official_rule(f'backbone.{name}', param, num_layers=6)
        assert settings[name] == (pytest.approx(lr), wd), name
    assert settings['patch_embed.projection.weight'][0] == pytest.approx(BASE_LR * RATE**7)
    assert settings['ln1.weight'][0] == pytest.approx(BASE_LR)


@pytest.fixture
def process_group(tmp_path):
    """A gloo process group of one, as a CPU run launched with torchrun has."""
    dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path / "store"}', rank=0, world_size=1
    )
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize(
    'wrapper', [nn.parallel.DistributedDataParallel, CPUDistributedDataParallel]
)
def test_depth_is_read_through_ddp(process_group, wrapper):
    # Feature2Pyramid's SyncBN has no CPU kernel: BN, as CPUDistributedDataParallel makes it.
    model = revert_sync_batchnorm(tiny_segmentor(num_layers=6))
    wrapped = wrapper(model)
    assert wrapped.module is model
    assert backbone_depth(wrapped) == 6
    through = groups_of(build_optim_wrapper(wrapped, optim_cfg(OURS)))
    assert through == groups_of(build_optim_wrapper(model, optim_cfg(OURS)))
    assert len(through) == 2 * (6 + 2) and through[0]['lr_scale'] == pytest.approx(RATE**7)


def test_num_layers_given_and_equal_changes_nothing():
    model = tiny_segmentor()
    without = groups_of(build_optim_wrapper(model, optim_cfg(OURS)))
    given = groups_of(build_optim_wrapper(model, optim_cfg(OURS, num_layers=NUM_LAYERS)))
    assert given == without
    assert [group['lr_scale'] for group in given[::2]] == pytest.approx(
        [RATE ** (NUM_LAYERS + 1 - layer) for layer in range(NUM_LAYERS + 2)]
    )


def test_num_layers_given_and_different_is_an_error():
    model = tiny_segmentor()
    with pytest.raises(ValueError) as error:
        build_optim_wrapper(model, optim_cfg(OURS, num_layers=12))
    assert str(error.value) == (
        'MAELayerDecayOptimizerConstructor: optim_wrapper.paramwise_cfg.num_layers=12 but the '
        'backbone has 4 transformer blocks (model.backbone.num_layers=4): '
        'MAELayerDecayOptimizerConstructor reads the depth from the model; delete '
        'paramwise_cfg.num_layers, or make it equal model.backbone.num_layers'
    )


class ConvSegmentor(nn.Module):
    """A segmentor whose backbone has no transformer blocks."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
        self.decode_head = nn.Conv2d(8, 2, 1)


@pytest.mark.parametrize('given', [{}, {'num_layers': 4}], ids=['not-given', 'given'])
def test_a_model_without_blocks_is_an_error(given):
    model = ConvSegmentor()
    assert backbone_depth(model) is None
    # The count given cannot stand in: the rule places blocks by their names.
    with pytest.raises(ValueError) as error:
        build_optim_wrapper(model, optim_cfg(OURS, **given))
    assert str(error.value) == (
        'MAELayerDecayOptimizerConstructor: found no transformer blocks to decay in '
        'ConvSegmentor: it looks for a non-empty ModuleList model.backbone.layers (or layers '
        'of a bare backbone), and Sequential has none; layer-wise lr decay serves ViT '
        "backbones such as MAEViT and mmseg's MAE and BEiT"
    )


# -- mmseg's own constructor tests (tests/test_engine/test_layer_decay_optimizer_constructor.py)
# The same toy models and expectations, for ours as a drop-in: a DataParallel-like wrapper
# with ``.module``, three Conv2d blocks, one-element cls_token and patch_embed, decay rate 2,
# base lr 1. mmseg's constructor, given num_layers, is the oracle; ours needs no num_layers.

MMSEG_EXPECTED = [(0.0, 16)] + [(wd, scale) for scale in (8, 4, 2, 1) for wd in (0.05, 0.0)]


class ToyBEiT(nn.Module):
    def __init__(self):
        super().__init__()
        self.cls_token = nn.Parameter(torch.ones(1))
        self.patch_embed = nn.Parameter(torch.ones(1))
        self.layers = nn.ModuleList(nn.Conv2d(3, 3, 1) for _ in range(3))


class ToyMAE(ToyBEiT):
    pass


class ToySegmentor(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.decode_head = nn.Conv2d(2, 2, kernel_size=1, groups=2)


class PseudoDataParallel(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.module = model


def toy_groups(model, constructor, paramwise_cfg):
    cfg = dict(
        type='OptimWrapper',
        constructor=constructor,
        paramwise_cfg=dict(paramwise_cfg),  # mmseg's pops layer_decay_rate from it
        optimizer=dict(type='AdamW', lr=1, betas=(0.9, 0.999), weight_decay=0.05),
    )
    optimizer = build_optim_wrapper(model, cfg).optimizer
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults['lr'] == 1 and optimizer.defaults['weight_decay'] == 0.05
    for group in optimizer.param_groups:
        assert group['lr'] == group['lr_scale']
    return [(group['weight_decay'], group['lr_scale']) for group in optimizer.param_groups]


@pytest.mark.parametrize('toy', [ToyBEiT, ToyMAE])
@pytest.mark.parametrize(
    ('mmseg_constructor', 'paramwise_cfg'),
    [
        ('LayerDecayOptimizerConstructor', dict(layer_decay_rate=2)),
        ('LearningRateDecayOptimizerConstructor', dict(decay_rate=2, decay_type='layer_wise')),
    ],
)
def test_mmseg_constructor_cases(toy, mmseg_constructor, paramwise_cfg):
    model = PseudoDataParallel(ToySegmentor(toy()))
    theirs = toy_groups(model, mmseg_constructor, {**paramwise_cfg, 'num_layers': 3})
    assert theirs == MMSEG_EXPECTED
    assert toy_groups(model, OURS, {**paramwise_cfg, 'num_layers': 3}) == theirs
    assert toy_groups(model, OURS, paramwise_cfg) == theirs
