"""tools/model_converters/mae2mmseg.py: summary, verification, and one line for each bad input."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'tools' / 'model_converters' / 'mae2mmseg.py'


@pytest.fixture(scope='module')
def tool(load_tool):
    return load_tool('model_converters/mae2mmseg.py')


def test_official_checkpoint_summary_verify_and_output(tool, official_checkpoint, tmp_path, capsys):
    src, vit = official_checkpoint
    dst = tmp_path / 'mae_vit.pth'
    assert tool.main([str(src), str(dst), '--verify', '--num-heads', '3']) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f'mae2mmseg: {src}: official MAE / timm layout, 41 tensors'
    assert out[1].startswith('  encoder  2 layers, 96 dims, mlp_ratio 4, patch 16, pos_embed')
    assert out[2] == '  heads    3 (as given)'
    assert out[3] == '  kept     30 tensors (28 renamed)'
    assert out[4].startswith('  dropped  11 tensors: mask_token, decoder_pos_embed, decoder_emb')
    assert 'MAEViT initialises them): layers.{0-1}.gamma_1' in out[5]
    assert out[6].startswith('  verify   max abs diff ') and out[6].endswith(': ok')
    assert out[7].startswith(f'  wrote    {dst} (')
    assert "num_heads=3, mlp_ratio=4, init_cfg=dict(type='Pretrained'" in out[8]
    state = torch.load(dst, weights_only=True)['state_dict']
    torch.testing.assert_close(state['layers.0.attn.qkv.weight'], vit.blocks[0].attn.qkv.weight)


def test_hub_folder_summary_verify_against_transformers_and_output(tool, tmp_path, capsys):
    import transformers

    config = transformers.ViTMAEConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=256,
        image_size=32,
        patch_size=8,
        decoder_hidden_size=32,
        decoder_num_hidden_layers=1,
        decoder_num_attention_heads=4,
        decoder_intermediate_size=64,
    )
    folder = tmp_path / 'vit-mae-tiny'
    transformers.ViTMAEForPreTraining(config).save_pretrained(folder)
    dst = tmp_path / 'converted.pth'
    assert tool.main([str(folder), str(dst), '--verify']) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(': transformers ViTMAE / ViT (Hugging Face hub) layout, 62 tensors')
    assert out[1].startswith('  encoder  2 layers, 64 dims, mlp_ratio 4, patch 8, pos_embed')
    assert out[2] == '  heads    4 (from config.json)'
    assert out[3] == '  LN eps   1e-12 (config.json)'
    assert out[4] == '  kept     30 tensors (30 renamed)'
    assert out[5].startswith('  dropped  24 tensors: decoder.* (24)')
    assert out[7].startswith('  verify   max abs diff ')
    assert out[7].endswith('over final tokens vs transformers ViTMAEModel (tolerance 1e-04): ok')
    assert "norm_cfg=dict(type='LN', eps=1e-12)" in out[9]
    assert len(torch.load(dst, weights_only=True)['state_dict']) == 30


def test_default_heads_are_announced(tool, mmpretrain_checkpoint, tmp_path, capsys):
    assert tool.main([str(mmpretrain_checkpoint[0]), str(tmp_path / 'out.pth')]) == 0
    out = capsys.readouterr().out
    assert 'mmpretrain / mmselfsup layout' in out
    assert '  heads    1 (not stored in the weights: width // 64; give --num-heads' in out


def test_failed_verification_exits_1_and_writes_nothing(
    tool, official_checkpoint, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(tool, 'verify', lambda conversion, num_heads: 0.25)
    dst = tmp_path / 'out.pth'
    assert tool.main([str(official_checkpoint[0]), str(dst), '--verify']) == 1
    captured = capsys.readouterr()
    assert 'max abs diff 2.50e-01' in captured.out and 'FAILED' in captured.out
    assert (
        captured.err
        == f'mae2mmseg: verification failed (max abs diff 2.50e-01); {dst} not written\n'
    )
    assert not dst.exists()


def test_force_replaces_an_existing_output(tool, official_checkpoint, tmp_path):
    dst = tmp_path / 'out.pth'
    dst.write_bytes(b'old')
    assert tool.main([str(official_checkpoint[0]), str(dst), '--force']) == 0
    assert 'state_dict' in torch.load(dst, weights_only=True)


BAD_INPUTS = [
    'missing file',
    'empty file',
    'text file',
    'truncated file',
    'code in pickle',
    'not a vit',
    'other vit variant',
    'incomplete encoder',
    'wrong layout forced',
    'heads do not divide',
    'output exists',
    'output is a directory',
    'unknown option',
    'unreachable url',
]


@pytest.fixture
def bad_inputs(tmp_path, official_checkpoint, make_timm_vit):
    """name -> (argv, the message after 'mae2mmseg: error: ')."""
    official, dst = str(official_checkpoint[0]), str(tmp_path / 'out.pth')
    files = {}

    def save(name, obj):
        files[name] = tmp_path / name
        torch.save(obj, files[name])
        return files[name]

    class Payload:
        def __reduce__(self):
            return (print, ('executed',))

    missing = tmp_path / 'missing.pth'
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    text = tmp_path / 'notes.pth'
    text.write_text('weights are on the other disk\n')
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(official_checkpoint[0].read_bytes()[:4096])
    evil = save('evil.pth', {'model': Payload()})
    resnet = save(
        'resnet.pth', {'state_dict': {'conv1.weight': torch.zeros(1), 'fc.weight': torch.zeros(1)}}
    )
    registers = save('vit_reg.pth', make_timm_vit(reg_tokens=4).state_dict())
    state = torch.load(official, weights_only=True)['model']
    del state['blocks.1.mlp.fc2.weight']
    incomplete = save('incomplete.pth', {'model': state})
    exists = tmp_path / 'exists.pth'
    exists.write_bytes(b'keep me')
    return {
        'missing file': ([str(missing), dst], f'checkpoint {missing} does not exist'),
        'empty file': ([str(empty), dst], f'checkpoint {empty} is empty'),
        'text file': (
            [str(text), dst],
            f'checkpoint {text} is neither a torch checkpoint nor a safetensors file',
        ),
        'truncated file': (
            [str(truncated), dst],
            f'checkpoint {truncated} is not a readable torch checkpoint',
        ),
        'code in pickle': (
            [str(evil), dst],
            f'checkpoint {evil} was refused by the safe loader (weights_only=True): it would '
            'create or call print, which is not a tensor or container; convert it '
            'where you trust its origin',
        ),
        'not a vit': (
            [str(resnet), dst],
            f'{resnet}: no ViT encoder found: neither blocks.<i>.* (official MAE / timm), '
            'encoder.layer.<i>.* (transformers) nor layers.<i>.* (mmpretrain / mmseg) keys, '
            'only conv1.weight, fc.weight',
        ),
        'other vit variant': (
            [str(registers), dst],
            f'{registers}: 1 keys are not part of an MAE ViT encoder in the official MAE / timm '
            'layout: reg_token; wrong --layout, or a ViT variant the converter does not support '
            '(register tokens, qk-norm, BEiT q/v biases)',
        ),
        'incomplete encoder': (
            [str(incomplete), dst],
            f'{incomplete}: the encoder is incomplete; missing 1 tensors: '
            'layers.{1}.ffn.layers.1.weight',
        ),
        'wrong layout forced': (
            [official, dst, '--layout', 'mmseg'],
            f'{official}: 39 keys are not part of an MAE ViT encoder in the mmseg MAE / MAEViT '
            'layout: patch_embed.proj.weight, patch_embed.proj.bias, blocks.{0-1}.norm1.weight, '
            'blocks.{0-1}.norm1.bias, ... (23 more); wrong --layout',
        ),
        'heads do not divide': (
            [official, dst, '--num-heads', '5'],
            '5 heads do not divide the 96 channels; fix --num-heads',
        ),
        'output exists': (
            [official, str(exists)],
            f'output {exists} exists; choose another name or allow replacing it (--force)',
        ),
        'output is a directory': (
            [official, str(tmp_path)],
            f'output {tmp_path} is a directory; give a file name',
        ),
        'unknown option': (
            [official, dst, '--layuot', 'mmseg'],
            'unrecognized arguments: --layuot mmseg (see --help)',
        ),
        'unreachable url': (
            ['http://127.0.0.1:9/mae.pth', dst, '--cache-dir', str(tmp_path / 'cache')],
            'checkpoint http://127.0.0.1:9/mae.pth cannot be downloaded: ',
        ),
    }


def _exit_code(tool, argv):
    try:
        return tool.main(argv)
    except SystemExit as exit:  # argparse's usage errors
        return exit.code


@pytest.mark.parametrize('name', BAD_INPUTS)
def test_bad_input_gives_one_line_exit_2_and_no_file(tool, bad_inputs, tmp_path, capsys, name):
    argv, message = bad_inputs[name]
    before = sorted(tmp_path.rglob('*'))
    assert _exit_code(tool, argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f'mae2mmseg: error: {message}'), captured.err
    assert captured.err.count('\n') == 1 and captured.err.endswith('\n')
    assert 'Traceback' not in captured.err
    assert sorted(tmp_path.rglob('*')) == before, 'an output or partial file was left behind'
    assert (tmp_path / 'exists.pth').read_bytes() == b'keep me'


def test_as_a_program_bad_input_is_one_line_on_stderr(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / 'nope.pth'), str(tmp_path / 'out.pth')],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr == f'mae2mmseg: error: checkpoint {tmp_path / "nope.pth"} does not exist\n'
    assert result.stdout == ''


def official_vit_base_state():
    """A ViT-B/16 MAE pretraining state: random timm encoder plus the 8-block 512-d decoder."""
    from timm.models.vision_transformer import VisionTransformer

    encoder = VisionTransformer(num_classes=0)
    decoder = VisionTransformer(embed_dim=512, depth=8, num_heads=16, num_classes=0)
    state = dict(encoder.state_dict())
    state.update({f'decoder_blocks.{k}': v for k, v in decoder.blocks.state_dict().items()})
    state.update(
        {
            'mask_token': torch.zeros(1, 1, 512),
            'decoder_pos_embed': torch.zeros(1, 197, 512),
            'decoder_embed.weight': torch.randn(512, 768) * 0.02,
            'decoder_embed.bias': torch.zeros(512),
            'decoder_norm.weight': torch.ones(512),
            'decoder_norm.bias': torch.zeros(512),
            'decoder_pred.weight': torch.randn(16 * 16 * 3, 512) * 0.02,
            'decoder_pred.bias': torch.zeros(16 * 16 * 3),
        }
    )
    return state


@pytest.mark.slow
def test_vit_base_official_checkpoint_converts_and_verifies(tool, tmp_path, capsys):
    src, dst = tmp_path / 'mae_visualize_vit_base.pth', tmp_path / 'mae_vit_base.pth'
    torch.save({'model': official_vit_base_state()}, src)
    assert tool.main([str(src), str(dst), '--verify']) == 0
    out = capsys.readouterr().out
    assert 'official MAE / timm layout, 254 tensors' in out
    assert '12 layers, 768 dims, mlp_ratio 4, patch 16, pos_embed grid 14x14' in out
    assert 'heads    12 (not stored in the weights: the MAE ViT-B value' in out
    assert 'kept     150 tensors' in out and 'dropped  104 tensors' in out
    diff = float(out.split('max abs diff ')[1].split()[0])
    assert diff < 1e-4
    assert len(torch.load(dst, weights_only=True)['state_dict']) == 150
