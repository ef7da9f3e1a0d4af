"""Key mappings of each layout, and detection of the layout by structure."""

import pytest
import torch

from mae_seg.convert import (
    detect_layout,
    mae_vit_to_timm,
    mmpretrain_to_mae_vit,
    mmseg_to_mae_vit,
    official_to_mae_vit,
)
from mae_seg.errors import ConversionError
from mae_seg.models import MAEViT

OFFICIAL_TO_MAE_VIT = {
    'cls_token': 'cls_token',
    'pos_embed': 'pos_embed',
    'patch_embed.proj.weight': 'patch_embed.projection.weight',
    'patch_embed.proj.bias': 'patch_embed.projection.bias',
    'blocks.1.norm1.weight': 'layers.1.ln1.weight',
    'blocks.1.norm1.bias': 'layers.1.ln1.bias',
    'blocks.1.attn.qkv.weight': 'layers.1.attn.qkv.weight',
    'blocks.1.attn.qkv.bias': 'layers.1.attn.qkv.bias',
    'blocks.1.attn.proj.weight': 'layers.1.attn.proj.weight',
    'blocks.1.norm2.bias': 'layers.1.ln2.bias',
    'blocks.1.mlp.fc1.weight': 'layers.1.ffn.layers.0.0.weight',
    'blocks.1.mlp.fc1.bias': 'layers.1.ffn.layers.0.0.bias',
    'blocks.1.mlp.fc2.weight': 'layers.1.ffn.layers.1.weight',
    'blocks.1.ls1.gamma': 'layers.1.gamma_1',
    'blocks.1.ls2.gamma': 'layers.1.gamma_2',
    'norm.weight': 'ln1.weight',
    'norm.bias': 'ln1.bias',
}


def test_official_names_map_one_to_one_and_keep_the_tensors():
    source = {key: torch.full((2,), float(i)) for i, key in enumerate(OFFICIAL_TO_MAE_VIT)}
    result = official_to_mae_vit(source)
    assert result.state_dict.keys() == set(OFFICIAL_TO_MAE_VIT.values())
    for old, new in OFFICIAL_TO_MAE_VIT.items():
        assert result.state_dict[new] is source[old]
    assert result.dropped == []
    assert result.renamed == len(OFFICIAL_TO_MAE_VIT) - 2  # cls_token, pos_embed keep names


def test_official_decoder_and_classifier_are_dropped(mae_decoder):
    source = {
        'cls_token': torch.zeros(1),
        **mae_decoder,
        'fc_norm.weight': torch.zeros(1),
        'head.weight': torch.zeros(1),
        'head.0.running_mean': torch.zeros(1),
    }
    result = official_to_mae_vit(source)
    assert list(result.state_dict) == ['cls_token']
    assert sorted(result.dropped) == sorted(set(source) - {'cls_token'})


@pytest.mark.parametrize(
    'key',
    ['reg_token', 'blocks.0.attn.q_norm.weight', 'blocks.0.attn.q_bias', 'norm_pre.weight'],
)
def test_official_refuses_other_vit_variants(key):
    with pytest.raises(ConversionError, match=key.replace('.', r'\.').replace('0', r'\{0\}')):
        official_to_mae_vit({'cls_token': torch.zeros(1), key: torch.zeros(1)})


def test_mmpretrain_names_with_layer_scale_and_dropped_parts():
    source = {
        'backbone.cls_token': torch.zeros(1),
        'backbone.patch_embed.projection.weight': torch.zeros(2),
        'backbone.layers.3.ln1.weight': torch.zeros(3),
        'backbone.layers.3.ffn.layers.0.0.bias': torch.zeros(4),
        'backbone.layers.3.attn.gamma1.weight': torch.zeros(5),
        'backbone.layers.3.ffn.gamma2.weight': torch.zeros(6),
        'backbone.ln1.bias': torch.zeros(7),
        'backbone.ln2.weight': torch.zeros(1),
        'neck.decoder_blocks.0.ln1.weight': torch.zeros(1),
        'target_generator.tokenizer.weight': torch.zeros(1),
        'data_preprocessor.mean': torch.zeros(1),
    }
    result = mmpretrain_to_mae_vit(source)
    assert {k: v.numel() for k, v in result.state_dict.items()} == {
        'cls_token': 1,
        'patch_embed.projection.weight': 2,
        'layers.3.ln1.weight': 3,
        'layers.3.ffn.layers.0.0.bias': 4,
        'layers.3.gamma_1': 5,
        'layers.3.gamma_2': 6,
        'ln1.bias': 7,
    }
    assert len(result.dropped) == 4


def test_mmseg_segmentor_and_bare_backbone_pass_through():
    backbone = MAEViT(img_size=32, embed_dims=64, num_layers=2, num_heads=2).state_dict()
    segmentor = {f'backbone.{k}': v for k, v in backbone.items()}
    segmentor['backbone.layers.0.attn.relative_position_index'] = torch.zeros(5, 5)
    segmentor['decode_head.conv_seg.weight'] = torch.zeros(3, 3)
    segmentor['auxiliary_head.conv_seg.weight'] = torch.zeros(3, 3)
    for source in (backbone, segmentor):
        result = mmseg_to_mae_vit(source)
        assert result.state_dict.keys() == backbone.keys()
        assert all(
            result.state_dict[k] is source.get(k, source.get(f'backbone.{k}')) for k in backbone
        )
    assert mmseg_to_mae_vit(backbone).renamed == 0
    assert len(mmseg_to_mae_vit(segmentor).dropped) == 3


def test_a_backbone_and_a_bare_copy_of_it_are_refused():
    with pytest.raises(ConversionError, match='two tensors .* map to cls_token'):
        mmseg_to_mae_vit({'cls_token': torch.zeros(1), 'backbone.cls_token': torch.zeros(1)})


def test_timm_names_round_trip(make_timm_vit):
    timm_state = make_timm_vit(init_values=0.1).state_dict()
    back = mae_vit_to_timm(official_to_mae_vit(timm_state).state_dict)
    assert back.state_dict.keys() == timm_state.keys()
    assert all(back.state_dict[k] is v for k, v in timm_state.items())


@pytest.mark.parametrize(
    'form, layout',
    [
        ('official pretraining', 'official'),
        ('timm encoder', 'official'),
        ('mmpretrain pretraining', 'mmpretrain'),
        ('mmpretrain bare backbone', 'mmpretrain'),
        ('mmseg backbone', 'mmseg'),
        ('mmseg segmentor', 'mmseg'),
    ],
)
def test_layout_is_detected_by_structure(
    make_timm_vit, mae_decoder, timm_to_mmpretrain, form, layout
):
    timm_state = make_timm_vit(init_values=0.1).state_dict()
    mae_vit_state = official_to_mae_vit(timm_state).state_dict
    state = {
        'official pretraining': lambda: {**timm_state, **mae_decoder},
        'timm encoder': lambda: timm_state,
        'mmpretrain pretraining': lambda: {
            **{k: v for k, v in timm_to_mmpretrain(timm_state).items() if 'gamma' not in k},
            'neck.mask_token': torch.zeros(1),
        },
        'mmpretrain bare backbone': lambda: {
            k[len('backbone.') :]: v for k, v in timm_to_mmpretrain(timm_state).items()
        },
        'mmseg backbone': lambda: mae_vit_state,
        'mmseg segmentor': lambda: {
            **{f'backbone.{k}': v for k, v in mae_vit_state.items()},
            'neck.upsample_4x.0.weight': torch.zeros(1),  # Feature2Pyramid
            'decode_head.conv_seg.weight': torch.zeros(1),
        },
    }[form]()
    assert detect_layout(state) == layout


def test_mmpretrain_and_mmseg_share_layer_names_but_not_their_marks():
    layers = {'layers.0.ln1.weight': torch.zeros(1)}
    assert detect_layout({**layers, 'layers.0.gamma_1': torch.zeros(1)}) == 'mmseg'
    assert detect_layout({**layers, 'layers.0.attn.gamma1.weight': torch.zeros(1)}) == 'mmpretrain'
    decoder = {'neck.decoder_embed.weight': torch.zeros(1)}
    assert detect_layout({**layers, **decoder}) == 'mmpretrain'
    assert detect_layout({**layers, 'neck.upsample_4x.0.weight': torch.zeros(1)}) == 'mmseg'
    with pytest.raises(ConversionError, match='both the mmseg and the mmpretrain'):
        detect_layout({**layers, 'layers.0.gamma_1': torch.zeros(1), **decoder})


def test_no_vit_encoder_is_reported_with_its_keys():
    resnet = {f'layer1.{i}.conv1.weight': torch.zeros(1) for i in range(3)}
    with pytest.raises(ConversionError, match=r'no ViT encoder found.*layer1\.\{0-2\}\.conv1'):
        detect_layout(resnet)
