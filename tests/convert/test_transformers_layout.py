"""transformers / Hugging Face hub checkpoints: names, folders, config.json, and transformers'
own ViTMAEModel and ViTModel as the reference."""

import json
import shutil

import pytest
import torch
import transformers
from safetensors.torch import load_file

from mae_seg.convert import (
    convert_checkpoint,
    detect_layout,
    resolve_num_heads,
    transformers_to_mae_vit,
)
from mae_seg.convert.verify import VERIFY_TOLERANCE, verify, verify_against_transformers
from mae_seg.errors import CheckpointError, ConversionError
from mae_seg.models import MAEViT

TINY_HF = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=128,
    image_size=32,
    patch_size=8,
)
TINY_DECODER = dict(
    decoder_hidden_size=32,
    decoder_num_hidden_layers=1,
    decoder_num_attention_heads=4,
    decoder_intermediate_size=64,
)


def _randomize_(model):
    """Random values everywhere (position embeddings and norms too), so a swapped name shows."""
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
            if 'layernorm' in name and name.endswith('weight'):
                param.add_(1.0)
        for buffer in model.buffers():
            if buffer.is_floating_point():
                buffer.copy_(torch.randn(buffer.shape, generator=generator) * 0.05)
    return model


def _save(model, folder):
    model.save_pretrained(folder)
    return folder


@pytest.fixture
def pretraining_folder(tmp_path):
    """A hub folder as ``huggingface-cli download`` leaves it: ViTMAEForPreTraining, tiny."""
    config = transformers.ViTMAEConfig(**TINY_HF, **TINY_DECODER)
    model = _randomize_(transformers.ViTMAEForPreTraining(config))
    return _save(model, tmp_path / 'vit-mae-tiny')


def test_names_map_and_qkv_is_query_key_value_in_order():
    q, k, v = torch.randn(3, 8, 8).unbind(0)
    qb, kb, vb = torch.randn(3, 8).unbind(0)
    prefix = 'vit.encoder.layer.1.'
    state = {
        'vit.embeddings.cls_token': torch.zeros(1, 1, 8),
        'vit.embeddings.position_embeddings': torch.zeros(1, 5, 8),
        f'{prefix}attention.attention.query.weight': q,
        f'{prefix}attention.attention.key.weight': k,
        f'{prefix}attention.attention.value.weight': v,
        f'{prefix}attention.attention.query.bias': qb,
        f'{prefix}attention.attention.key.bias': kb,
        f'{prefix}attention.attention.value.bias': vb,
        f'{prefix}attention.output.dense.weight': torch.ones(8, 8),
        f'{prefix}intermediate.dense.bias': torch.ones(32),
        f'{prefix}output.dense.weight': torch.ones(8, 32),
        f'{prefix}layernorm_before.weight': torch.ones(8),
        f'{prefix}layernorm_after.bias': torch.ones(8),
        'vit.layernorm.weight': torch.ones(8),
        'decoder.decoder_pred.weight': torch.ones(4, 8),
        'decoder.mask_token': torch.ones(1, 1, 8),
    }
    assert detect_layout(state) == 'transformers'
    converted = transformers_to_mae_vit(state)
    assert sorted(converted.state_dict) == sorted(
        [
            'cls_token',
            'pos_embed',
            'layers.1.attn.qkv.weight',
            'layers.1.attn.qkv.bias',
            'layers.1.attn.proj.weight',
            'layers.1.ffn.layers.0.0.bias',
            'layers.1.ffn.layers.1.weight',
            'layers.1.ln1.weight',
            'layers.1.ln2.bias',
            'ln1.weight',
        ]
    )
    torch.testing.assert_close(
        converted.state_dict['layers.1.attn.qkv.weight'], torch.cat([q, k, v])
    )
    torch.testing.assert_close(
        converted.state_dict['layers.1.attn.qkv.bias'], torch.cat([qb, kb, vb])
    )
    assert converted.dropped == ['decoder.decoder_pred.weight', 'decoder.mask_token']
    assert converted.renamed == len(converted.state_dict)


def test_a_layer_without_all_of_query_key_value_is_refused():
    state = {
        'encoder.layer.0.attention.attention.query.weight': torch.ones(8, 8),
        'encoder.layer.0.attention.attention.value.weight': torch.ones(8, 8),
    }
    with pytest.raises(
        ConversionError,
        match='layers.0.attn.qkv.weight cannot be assembled: '
        'the checkpoint lacks the key projection',
    ):
        transformers_to_mae_vit(state)


def test_hub_folder_converts_and_equals_transformers_vit_mae_model(pretraining_folder):
    conversion = convert_checkpoint(str(pretraining_folder))
    assert conversion.layout == 'transformers'
    assert conversion.hub_config is not None and conversion.hub_config.model_type == 'vit_mae'
    assert conversion.norm_eps == 1e-12
    arch = conversion.architecture
    assert (arch.embed_dims, arch.num_layers, arch.mlp_ratio, arch.patch_size, arch.grid) == (
        64,
        2,
        2,
        8,
        4,
    )
    assert arch.final_norm and not arch.layer_scale and arch.rel_pos_table is None
    assert any(key.startswith('decoder.') for key in conversion.converted.dropped)
    assert resolve_num_heads(arch, None, conversion.config_num_heads) == (4, 'from config.json')
    diff = verify_against_transformers(conversion, num_heads=4)
    assert diff <= VERIFY_TOLERANCE
    assert verify(conversion, num_heads=4) == diff


def test_a_wrong_mapping_is_caught_by_the_transformers_reference(pretraining_folder):
    conversion = convert_checkpoint(str(pretraining_folder))
    qkv = conversion.state_dict['layers.1.attn.qkv.weight']
    q, k, v = qkv.chunk(3)
    conversion.state_dict['layers.1.attn.qkv.weight'] = torch.cat([k, q, v])
    assert verify_against_transformers(conversion, num_heads=4) > 1e-2


def test_bin_folder_and_single_files_give_the_same_tensors(pretraining_folder, tmp_path):
    # The hub's older pytorch_model.bin: the same tensors, torch.save'd (transformers 5 only
    # writes safetensors).
    bin_folder = tmp_path / 'bin'
    bin_folder.mkdir()
    torch.save(
        load_file(pretraining_folder / 'model.safetensors'), bin_folder / 'pytorch_model.bin'
    )
    shutil.copy(pretraining_folder / 'config.json', bin_folder)
    expected = convert_checkpoint(str(pretraining_folder)).state_dict
    for source in [
        bin_folder,
        bin_folder / 'pytorch_model.bin',
        pretraining_folder / 'model.safetensors',
    ]:
        conversion = convert_checkpoint(str(source))
        assert conversion.hub_config is not None  # config.json beside the file is read too
        assert conversion.state_dict.keys() == expected.keys()
        for key, value in expected.items():
            torch.testing.assert_close(conversion.state_dict[key], value, rtol=0, atol=0)


def test_vit_mae_model_without_the_vit_prefix(tmp_path):
    model = _randomize_(transformers.ViTMAEModel(transformers.ViTMAEConfig(**TINY_HF)))
    folder = _save(model, tmp_path / 'encoder')
    conversion = convert_checkpoint(str(folder))
    assert conversion.layout == 'transformers'
    assert verify_against_transformers(conversion, num_heads=4) <= VERIFY_TOLERANCE


def test_fine_tuned_vit_classifier_equals_transformers_vit_model(tmp_path):
    config = transformers.ViTConfig(**TINY_HF, num_labels=5, layer_norm_eps=1e-6)
    model = _randomize_(transformers.ViTForImageClassification(config))
    conversion = convert_checkpoint(str(_save(model, tmp_path / 'classifier')))
    assert conversion.hub_config.model_type == 'vit'
    assert conversion.norm_eps == 1e-6
    assert sorted(conversion.converted.dropped) == ['classifier.bias', 'classifier.weight']
    assert verify_against_transformers(conversion, num_heads=4) <= VERIFY_TOLERANCE


def test_without_config_json_the_transformers_defaults_apply(pretraining_folder):
    (pretraining_folder / 'config.json').unlink()
    conversion = convert_checkpoint(str(pretraining_folder))
    assert conversion.hub_config is None and conversion.norm_eps == 1e-12
    assert verify_against_transformers(conversion, num_heads=4) <= VERIFY_TOLERANCE


def _edit_config(folder, **changes):
    path = folder / 'config.json'
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    'changes, message',
    [
        (dict(hidden_size=768), 'says hidden_size 768 but the weights have 64'),
        (dict(num_hidden_layers=12), 'says num_hidden_layers 12 but the weights have 2'),
        (dict(image_size=224), 'says image_size 224 but the weights have 32'),
        (dict(patch_size=16), 'says patch_size 16 but the weights have 8'),
        (dict(intermediate_size=256), 'says intermediate_size 256 but the weights have 128'),
        (dict(hidden_act='relu'), "sets hidden_act 'relu'; MAEViT is built for 'gelu' only"),
    ],
)
def test_a_config_that_contradicts_the_tensors_is_refused(pretraining_folder, changes, message):
    _edit_config(pretraining_folder, **changes)
    with pytest.raises(ConversionError, match=message):
        convert_checkpoint(str(pretraining_folder))


def test_num_heads_from_config_must_agree_with_the_request(pretraining_folder):
    conversion = convert_checkpoint(str(pretraining_folder))
    with pytest.raises(
        ConversionError,
        match='--num-heads 2 contradicts config.json, which has num_attention_heads 4',
    ):
        resolve_num_heads(conversion.architecture, 2, conversion.config_num_heads)


def test_folders_without_a_single_weights_file(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(
        CheckpointError, match='has neither model.safetensors nor pytorch_model.bin'
    ):
        convert_checkpoint(str(empty))
    sharded = tmp_path / 'sharded'
    sharded.mkdir()
    (sharded / 'model.safetensors.index.json').write_text('{}')
    with pytest.raises(CheckpointError, match='sharded checkpoint'):
        convert_checkpoint(str(sharded))


def test_converted_file_loads_into_the_printed_mae_vit(pretraining_folder, tmp_path):
    from mae_seg.convert import save_conversion

    conversion = convert_checkpoint(str(pretraining_folder))
    path = tmp_path / 'converted.pth'
    save_conversion(conversion, path)
    saved = torch.load(path, weights_only=True)
    assert saved['meta']['source_layout'] == 'transformers'
    assert saved['meta']['norm_eps'] == 1e-12
    model = MAEViT(**conversion.architecture.mae_vit_kwargs(4, conversion.norm_eps))
    result = model.load_state_dict(saved['state_dict'], strict=False)
    assert not result.unexpected_keys
    assert set(result.missing_keys) == set(conversion.architecture.keys_left_to_mae_vit())


@pytest.mark.slow
def test_vit_base_hub_folder_equals_transformers(tmp_path):
    """Real size: transformers' default ViTMAEConfig is facebook/vit-mae-base's."""
    folder = _save(transformers.ViTMAEForPreTraining(transformers.ViTMAEConfig()), tmp_path / 'b')
    conversion = convert_checkpoint(str(folder))
    assert len(conversion.source_state_dict) == 334 and len(conversion.state_dict) == 150
    heads, _ = resolve_num_heads(conversion.architecture, None, conversion.config_num_heads)
    assert heads == 12
    assert verify_against_transformers(conversion, heads) <= VERIFY_TOLERANCE
