"""Reading the ViT architecture from MAEViT-named tensors, and refusing inconsistent ones."""

import pytest
import torch

from mae_seg.convert import EncoderArchitecture, infer_architecture, official_to_mae_vit
from mae_seg.convert.architecture import resolve_num_heads
from mae_seg.errors import ConversionError
from mae_seg.models import MAEViT


@pytest.fixture
def encoder(make_timm_vit):
    return dict(official_to_mae_vit(make_timm_vit().state_dict()).state_dict)


def test_architecture_of_a_timm_encoder(encoder):
    arch = infer_architecture(encoder)
    assert arch == EncoderArchitecture(
        embed_dims=96,
        num_layers=2,
        mlp_ratio=4,
        patch_size=16,
        in_channels=3,
        grid=4,
        final_norm=True,
        layer_scale=False,
        rel_pos_table=None,
    )
    assert arch.img_size == 64
    assert arch.keys_left_to_mae_vit() == [
        'layers.0.gamma_1',
        'layers.0.gamma_2',
        'layers.0.attn.relative_position_bias_table',
        'layers.1.gamma_1',
        'layers.1.gamma_2',
        'layers.1.attn.relative_position_bias_table',
    ]


def test_expected_shapes_are_those_of_mae_vit():
    model = MAEViT(img_size=48, patch_size=8, embed_dims=64, num_layers=3, num_heads=4, mlp_ratio=2)
    state = {k: v for k, v in model.state_dict().items()}
    arch = infer_architecture(state)
    assert arch.rel_pos_table == ((2 * 6 - 1) ** 2 + 3, 4)
    assert (arch.layer_scale, arch.final_norm, arch.mlp_ratio, arch.grid) == (True, False, 2, 6)
    assert arch.expected_shapes() == {k: tuple(v.shape) for k, v in state.items()}
    assert arch.keys_left_to_mae_vit() == []
    rebuilt = MAEViT(**arch.mae_vit_kwargs(num_heads=4))
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in state.items()
    }


@pytest.mark.parametrize(
    'corrupt, message',
    [
        (lambda s: s.pop('layers.1.attn.qkv.weight'), r'missing 1 tensors: layers\.\{1\}\.attn'),
        (lambda s: s.pop('cls_token'), 'the encoder has no cls_token'),
        (
            lambda s: s.update({'layers.3.ln1.weight': torch.ones(96)}),
            r'missing 23 tensors: layers\.\{2\}\.ln1\.weight, layers\.\{2-3\}\.ln1\.bias',
        ),
        (
            lambda s: s.update({'layers.0.attn.proj.weight': torch.ones(96, 95)}),
            r'layers\.0\.attn\.proj\.weight has shape \(96, 95\); expected \(96, 96\)',
        ),
        (
            lambda s: s.update({'pos_embed': torch.zeros(1, 16, 96)}),
            'pos_embed holds 16 positions, not one class-token position plus a square grid',
        ),
        (
            lambda s: s.update({'layers.1.gamma_1': torch.ones(96)}),
            r'do not fit the rest of the encoder: layers\.\{1\}\.gamma_1',
        ),
        (
            lambda s: s.update({'ln1.bias': torch.zeros(96, dtype=torch.long)}),
            'ln1.bias holds torch.int64 values',
        ),
        (
            lambda s: s.update({'layers.0.ffn.layers.0.0.weight': torch.ones(100, 96)}),
            'FFN width 100 is not a multiple of the 96 channels',
        ),
    ],
)
def test_inconsistent_encoders_are_refused_with_the_tensor_named(encoder, corrupt, message):
    corrupt(encoder)
    with pytest.raises(ConversionError, match=message):
        infer_architecture(encoder)


@pytest.mark.parametrize(
    'dims, requested, heads, origin',
    [
        (768, None, 12, 'MAE ViT-B value'),
        (1024, None, 16, 'MAE ViT-L value'),
        (1280, None, 16, 'MAE ViT-H value'),
        (384, None, 6, 'width // 64'),
        (96, None, 1, 'width // 64'),
        (96, 3, 3, 'as given'),
    ],
)
def test_head_count_without_tables(dims, requested, heads, origin):
    arch = EncoderArchitecture(dims, 2, 4, 16, 3, 4, True, False, None)
    assert resolve_num_heads(arch, requested)[0] == heads
    assert origin in resolve_num_heads(arch, requested)[1]


def test_head_count_from_tables_wins_and_must_agree():
    arch = EncoderArchitecture(96, 2, 4, 16, 3, 4, False, True, (52, 3))
    assert resolve_num_heads(arch) == (3, 'from the relative position bias tables')
    with pytest.raises(ConversionError, match='--num-heads 4 contradicts .* 3 heads'):
        resolve_num_heads(arch, 4)


def test_head_count_must_divide_the_width():
    arch = EncoderArchitecture(96, 2, 4, 16, 3, 4, True, False, None)
    with pytest.raises(ConversionError, match='5 heads do not divide the 96 channels'):
        resolve_num_heads(arch, 5)
