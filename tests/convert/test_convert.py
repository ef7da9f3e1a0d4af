"""Whole conversions from files, the output file and who can read it, and safe loading."""

import argparse
import os

import pytest
import torch
from mmengine.runner import load_checkpoint
from mmseg.models.backbones.mae import MAE
from safetensors.torch import save_file

from mae_seg.convert import convert_checkpoint, convert_state_dict, save_conversion
from mae_seg.errors import CheckpointError, CheckpointNotFoundError, ConversionError
from mae_seg.io import save_checkpoint_file
from mae_seg.models import MAEViT

TINY_MAE_VIT = dict(img_size=64, embed_dims=96, num_layers=2, num_heads=3)


def assert_holds_timm_weights(state_dict, vit):
    """The converted tensors are the timm model's, compared module by module."""
    assert_close = torch.testing.assert_close
    assert_close(state_dict['patch_embed.projection.weight'], vit.patch_embed.proj.weight)
    assert_close(state_dict['pos_embed'], vit.pos_embed)
    assert_close(state_dict['ln1.bias'], vit.norm.bias)
    for i, block in enumerate(vit.blocks):
        assert_close(state_dict[f'layers.{i}.ln2.weight'], block.norm2.weight)
        assert_close(state_dict[f'layers.{i}.attn.qkv.bias'], block.attn.qkv.bias)
        assert_close(state_dict[f'layers.{i}.ffn.layers.1.weight'], block.mlp.fc2.weight)


def test_official_file_converts_and_loads_into_mae_vit(official_checkpoint, tmp_path, mm_log):
    path, vit = official_checkpoint
    conversion = convert_checkpoint(str(path))
    assert conversion.layout == 'official'
    assert len(conversion.converted.dropped) == 11  # the decoder
    dst = tmp_path / 'out' / 'mae_vit.pth'
    save_conversion(conversion, dst)

    saved = torch.load(dst, weights_only=True)
    assert set(saved) == {'meta', 'state_dict'}
    assert saved['meta']['source'] == 'mae_pretrain_tiny.pth'
    assert saved['meta']['source_layout'] == 'official'
    assert saved['meta']['architecture']['num_layers'] == 2
    model = MAEViT(
        **TINY_MAE_VIT, final_norm=True, init_cfg=dict(type='Pretrained', checkpoint=str(dst))
    )
    model.init_weights()
    assert_holds_timm_weights(model.state_dict(), vit)
    report = next(m for m in mm_log if 'MAEViT: loaded' in m)
    assert 'ignored' not in report
    assert 'not in the checkpoint, initialised for fine-tuning (6)' in report


def test_output_is_read_by_mmseg_mae_and_mmengine(official_checkpoint, tmp_path):
    path, vit = official_checkpoint
    dst = tmp_path / 'mae_vit.pth'
    save_conversion(convert_checkpoint(str(path)), dst)
    reference = MAE(**TINY_MAE_VIT, final_norm=True)
    reference.init_cfg = dict(type='Pretrained', checkpoint=str(dst))
    reference.init_weights()
    assert_holds_timm_weights(reference.state_dict(), vit)
    model = MAEViT(**TINY_MAE_VIT, final_norm=True)
    load_checkpoint(model, str(dst), map_location='cpu')
    assert_holds_timm_weights(model.state_dict(), vit)


def test_mmpretrain_file_converts_to_the_same_tensors(official_checkpoint, mmpretrain_checkpoint):
    official = convert_checkpoint(str(official_checkpoint[0]))
    mmpretrain = convert_checkpoint(str(mmpretrain_checkpoint[0]))
    assert mmpretrain.layout == 'mmpretrain'
    assert mmpretrain.state_dict.keys() == official.state_dict.keys()
    for key, value in official.state_dict.items():
        torch.testing.assert_close(mmpretrain.state_dict[key], value, rtol=0, atol=0)


def test_converting_the_output_again_changes_nothing(official_checkpoint, tmp_path):
    first = tmp_path / 'once.pth'
    save_conversion(convert_checkpoint(str(official_checkpoint[0])), first)
    again = convert_checkpoint(str(first))
    assert again.layout == 'mmseg'
    assert again.converted.renamed == 0 and again.converted.dropped == []
    once = torch.load(first, weights_only=True)['state_dict']
    assert again.state_dict.keys() == once.keys()
    assert all(torch.equal(again.state_dict[k], v) for k, v in once.items())


def test_layer_scales_and_a_missing_final_norm_carry_over(make_timm_vit):
    vit = make_timm_vit(init_values=0.3, global_pool='avg', fc_norm=True)
    state = {k: v for k, v in vit.state_dict().items() if not k.startswith('norm.')}
    conversion = convert_state_dict(state)
    assert conversion.architecture.layer_scale and not conversion.architecture.final_norm
    assert 'fc_norm.weight' in conversion.converted.dropped
    torch.testing.assert_close(conversion.state_dict['layers.1.gamma_2'], vit.blocks[1].ls2.gamma)


def test_safetensors_legacy_files_and_training_args_are_read(make_timm_vit, tmp_path):
    vit = make_timm_vit()
    flat = tmp_path / 'model.safetensors'
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, flat)
    legacy = tmp_path / 'legacy.pth'
    torch.save({'model': vit.state_dict()}, legacy, _use_new_zipfile_serialization=False)
    with_args = tmp_path / 'checkpoint-799.pth'
    args = argparse.Namespace(model='mae_vit_base_patch16', output_dir='./out', lr=None)
    torch.save({'model': vit.state_dict(), 'epoch': 799, 'args': args}, with_args)
    for path in (flat, legacy, with_args):
        assert_holds_timm_weights(convert_checkpoint(str(path)).state_dict, vit)


def test_a_file_that_would_run_code_is_refused_naming_what(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ('echo executed',))

    path = tmp_path / 'evil.pth'
    torch.save({'model': {'cls_token': torch.zeros(1)}, 'x': Payload()}, path)
    with pytest.raises(CheckpointError, match=r'refused .*weights_only=True.*call \w+\.system'):
        convert_checkpoint(str(path))


@pytest.mark.parametrize(
    'content, error, message',
    [
        (None, CheckpointNotFoundError, 'does not exist'),
        (b'', CheckpointError, 'is empty'),
        (
            b'<html>not found</html>',
            CheckpointError,
            'neither a torch checkpoint nor a safetensors',
        ),
        (b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": 1', CheckpointError, 'not a readable safetensors'),
    ],
)
def test_unreadable_files(tmp_path, content, error, message):
    path = tmp_path / 'input.pth'
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=message):
        convert_checkpoint(str(path))


def test_truncated_file(official_checkpoint):
    path = official_checkpoint[0]
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match='not a readable torch checkpoint'):
        convert_checkpoint(str(path))


def test_messages_name_the_file(tmp_path):
    path = tmp_path / 'resnet.pth'
    torch.save({'state_dict': {'conv1.weight': torch.zeros(1)}}, path)
    with pytest.raises(ConversionError, match=f'^{path}: no ViT encoder found'):
        convert_checkpoint(str(path))
    torch.save({'epoch': 3}, path)
    with pytest.raises(CheckpointError, match=f'^{path}: the checkpoint holds no state dict'):
        convert_checkpoint(str(path))
    with pytest.raises(ConversionError, match="unknown layout 'timm'"):
        convert_checkpoint(str(path), layout='timm')


def test_saving_refuses_to_replace_and_leaves_no_partial_file(tmp_path, monkeypatch):
    dst = tmp_path / 'out.pth'
    dst.write_bytes(b'previous')
    with pytest.raises(CheckpointError, match='exists; choose another name'):
        save_checkpoint_file({'a': torch.zeros(1)}, dst)
    with pytest.raises(CheckpointError, match='is a directory'):
        save_checkpoint_file({'a': torch.zeros(1)}, tmp_path)

    def failing_save(obj, path):
        with open(path, 'wb') as file:
            file.write(b'half')
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(torch, 'save', failing_save)
    with pytest.raises(CheckpointError, match='cannot be written: .*No space left'):
        save_checkpoint_file({'a': torch.zeros(1)}, dst, overwrite=True)
    assert dst.read_bytes() == b'previous'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out.pth']
    monkeypatch.undo()
    save_checkpoint_file({'a': torch.ones(1)}, dst, overwrite=True)
    assert torch.load(dst, weights_only=True)['a'].item() == 1.0
