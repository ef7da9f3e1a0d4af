"""The one rule every weight load goes by: missing, unexpected and mismatched keys."""

import pytest
import torch

from mae_seg.errors import CheckpointError
from mae_seg.io.fit import check_state_dict_fits, key_mismatch, load_excuses, matching_keys
from mae_seg.models import MAEViT


def test_patterns_name_module_prefixes_and_globs():
    keys = ['decode_head.conv_seg.weight', 'decode_head.conv_seg.bias',
            'decode_head.conv_seg_extra.weight',
            'layers.0.gamma_1', 'layers.11.gamma_1']  # fmt: skip
    assert matching_keys(keys, ['decode_head.conv_seg']) == keys[:2]
    assert matching_keys(keys, ['layers.*.gamma_1']) == keys[3:]
    assert matching_keys(keys, ['decode_head']) == keys[:3]
    assert matching_keys(keys, ['conv_seg']) == []


def test_each_kind_of_mismatch_and_its_excuses():
    expected = {'a.weight': torch.zeros(3, 2), 'b.weight': torch.zeros(4), 'pos': torch.zeros(5)}
    state = {'a.weight': torch.zeros(5, 2), 'pos': torch.zeros(9), 'extra': torch.zeros(1)}
    mismatch = key_mismatch(state, expected)
    assert mismatch.missing == ['b.weight']
    assert mismatch.unexpected == ['extra']
    assert mismatch.mismatched == [('a.weight', (5, 2), (3, 2)), ('pos', (9,), (5,))]
    excused = key_mismatch(
        state, expected, may_be_missing=['b'], may_be_unexpected=['extra'], resized=['pos']
    )
    assert excused.mismatched == [('a.weight', (5, 2), (3, 2))]
    assert not excused.missing and not excused.unexpected
    assert not key_mismatch(expected, expected)


def test_thousands_of_keys_make_one_short_line():
    expected = {f'layers.{i}.attn.{p}': torch.zeros(1) for i in range(200) for p in 'abcdefgh'}
    with pytest.raises(CheckpointError) as raised:
        check_state_dict_fits({}, expected, 'checkpoint x.pth', fix='convert it')
    message = str(raised.value)
    assert '\n' not in message and len(message) < 300
    assert message.startswith(
        'checkpoint x.pth does not fit the model: missing layers.{0-199}.attn.a'
    )
    assert message.endswith('; convert it')


def test_fix_may_depend_on_the_mismatch():
    with pytest.raises(CheckpointError, match='reinit w$'):
        check_state_dict_fits(
            {'w': torch.zeros(2)},
            {'w': torch.zeros(3)},
            'c',
            fix=lambda m: f'reinit {m.mismatched[0][0]}',
        )


def test_modules_declare_what_they_fit_on_load():
    model = torch.nn.ModuleDict(
        dict(backbone=MAEViT(img_size=32, embed_dims=64, num_layers=2, num_heads=2))
    )
    excuses = load_excuses(model)
    assert 'backbone.pos_embed' in excuses['resized']
    assert 'backbone.layers.*.attn.relative_position_index' in excuses['may_be_unexpected']
