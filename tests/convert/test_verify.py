"""The verification compares with timm's ViT, and it notices a wrong conversion."""

import dataclasses

import pytest
import torch

from mae_seg.convert import convert_checkpoint, convert_state_dict
from mae_seg.convert.verify import VERIFY_TOLERANCE, verify_against_timm
from mae_seg.errors import ConversionError
from mae_seg.models import MAEViT


@pytest.mark.parametrize('fixture', ['official_checkpoint', 'mmpretrain_checkpoint'])
def test_converted_features_match_timm(request, fixture):
    path, _ = request.getfixturevalue(fixture)
    assert verify_against_timm(convert_checkpoint(str(path)), num_heads=3) < 1e-5


def test_layer_scale_without_final_norm_matches_timm(make_timm_vit):
    vit = make_timm_vit(init_values=0.3, depth=3)
    state = {k: v for k, v in vit.state_dict().items() if not k.startswith('norm.')}
    conversion = convert_state_dict(state)
    assert not conversion.architecture.final_norm
    assert verify_against_timm(conversion, num_heads=3) < 1e-5


def test_half_precision_weights_are_compared_in_float(make_timm_vit):
    state = {k: v.half() for k, v in make_timm_vit().state_dict().items()}
    assert verify_against_timm(convert_state_dict(state), num_heads=3) < 1e-5


def test_a_wrong_mapping_is_caught(official_checkpoint):
    conversion = convert_checkpoint(str(official_checkpoint[0]))
    state = dict(conversion.state_dict)
    state['layers.1.ln1.weight'], state['layers.1.ln2.weight'] = (
        state['layers.1.ln2.weight'],
        state['layers.1.ln1.weight'],
    )
    swapped = dataclasses.replace(
        conversion, converted=dataclasses.replace(conversion.converted, state_dict=state)
    )
    assert verify_against_timm(swapped, num_heads=3) > 100 * VERIFY_TOLERANCE


def test_mmseg_file_with_relative_position_bias_cannot_be_compared_with_timm():
    model = MAEViT(img_size=64, embed_dims=96, num_layers=2, num_heads=3)
    with torch.no_grad():
        model.layers[0].attn.relative_position_bias_table.normal_()
    conversion = convert_state_dict(model.state_dict())
    with pytest.raises(ConversionError, match='relative position bias tables are not zero'):
        verify_against_timm(conversion, num_heads=3)
    zero_tables = MAEViT(img_size=64, embed_dims=96, num_layers=2, num_heads=3).state_dict()
    assert verify_against_timm(convert_state_dict(zero_tables), num_heads=3) < 1e-5
