"""tools/deployment/pytorch2onnx.py and deploy_test.py: output, errors, and the mIoU of the
exported model against tools/test.py's."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

OTHER_CONFIG = """
_base_ = [{tiny!r}]
model = dict(backbone=dict(embed_dims=128), neck=dict(embed_dim=128),
             decode_head=dict(in_channels=[128] * 4), auxiliary_head=dict(in_channels=128))
"""


def load_tool(name):
    spec = importlib.util.spec_from_file_location(
        name, ROOT / 'tools' / 'deployment' / f'{name}.py'
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def leftovers(folder):
    return sorted(p.name for p in Path(folder).iterdir()) if Path(folder).is_dir() else []


@pytest.mark.slow
def test_export_dynamic_and_verify(tiny_segmentor, tmp_path, capsys):
    config, checkpoint, _ = tiny_segmentor
    out = tmp_path / 'model.onnx'
    args = [str(config), str(checkpoint), str(out), '--dynamic', '--verify']
    assert load_tool('pytorch2onnx').main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f'wrote {out} (opset 18, any batch and size)'
    sizes = [line.split()[1] for line in lines[1:4]]
    assert sizes == ['128x128', '96x160', '200x136']
    for line in lines[1:4]:
        assert float(line.rsplit(' ', 1)[1]) <= 1e-3
    assert lines[4] == 'verify: ok, every difference <= 0.001'
    assert leftovers(tmp_path) == ['model.onnx']


def test_mismatched_checkpoint_is_one_line(tiny_segmentor, tmp_path, capsys):
    config, checkpoint, _ = tiny_segmentor
    other = tmp_path / 'other.py'
    other.write_text(OTHER_CONFIG.format(tiny=str(config)))
    out = tmp_path / 'out' / 'model.onnx'
    assert load_tool('pytorch2onnx').main([str(other), str(checkpoint), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f'pytorch2onnx.py: error: checkpoint {checkpoint} does not fit {other}')
    assert 'shapes (checkpoint vs model)' in err and '\n' not in err
    assert leftovers(tmp_path / 'out') == []


def test_cfg_options_reach_the_model(tiny_segmentor, tmp_path, capsys):
    config, checkpoint, _ = tiny_segmentor
    out = tmp_path / 'model.onnx'
    args = [str(config), str(checkpoint), str(out), '--cfg-options']
    args += ['model.decode_head.num_classes=3', 'model.auxiliary_head.num_classes=3']
    assert load_tool('pytorch2onnx').main(args) == 2
    err = capsys.readouterr().err.strip()
    assert 'decode_head.conv_seg.weight (5, 16, 1, 1) vs (3, 16, 1, 1)' in err
    assert '\n' not in err and leftovers(tmp_path) == []


def test_shape_below_two_patches_is_one_line(tiny_segmentor, tmp_path, capfd):
    config, checkpoint, _ = tiny_segmentor
    out = tmp_path / 'model.onnx'
    args = [str(config), str(checkpoint), str(out), '--shape', '16', '48']
    assert load_tool('pytorch2onnx').main(args) == 2
    err = capfd.readouterr().err.strip()
    assert err == (
        'pytorch2onnx.py: error: --shape 16 48 is too small: the model needs at least 2 '
        'patches a side, 32x32 pixels'
    )
    assert leftovers(tmp_path) == []


@pytest.mark.slow
def test_dynamic_verify_at_the_smallest_size(tiny_segmentor, tmp_path, capsys):
    config, checkpoint, _ = tiny_segmentor
    out = tmp_path / 'new' / 'model.onnx'
    args = [str(config), str(checkpoint), str(out), '--shape', '32', '32', '--dynamic']
    assert load_tool('pytorch2onnx').main([*args, '--verify']) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[1] for line in lines[1:4]] == ['32x32', '32x40', '50x34']
    assert lines[4] == 'verify: ok, every difference <= 0.001'
    assert leftovers(tmp_path / 'new') == ['model.onnx']


@pytest.mark.slow
def test_failed_verify_removes_the_file(tiny_segmentor, tmp_path, capsys):
    config, checkpoint, _ = tiny_segmentor
    out = tmp_path / 'model.onnx'
    args = [str(config), str(checkpoint), str(out), '--shape', '32', '32', '--verify']
    assert load_tool('pytorch2onnx').main([*args, '--tolerance', '0']) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith('pytorch2onnx.py: verify failed: ') and '> --tolerance 0' in err
    assert err.endswith(f'; removed {out}') and '\n' not in err
    assert captured.out.splitlines()[1].startswith('verify 32x32 (batch 1)')
    assert leftovers(tmp_path) == []


def test_unwritable_output_is_one_line(tiny_segmentor, tmp_path, capsys):
    config, checkpoint, _ = tiny_segmentor
    (tmp_path / 'file').write_text('')
    out = tmp_path / 'file' / 'model.onnx'
    assert load_tool('pytorch2onnx').main([str(config), str(checkpoint), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f'pytorch2onnx.py: error: output {out} cannot be written')
    assert '\n' not in err and leftovers(tmp_path) == ['file']


def test_existing_output_is_kept_without_force(tiny_segmentor, tmp_path, capsys):
    config, checkpoint, _ = tiny_segmentor
    out = tmp_path / 'model.onnx'
    out.write_text('keep me')
    assert load_tool('pytorch2onnx').main([str(config), str(checkpoint), str(out)]) == 2
    assert 'exists' in capsys.readouterr().err and out.read_text() == 'keep me'


@pytest.mark.slow
@pytest.mark.parametrize(
    'opset, message',
    [
        (11, '--opset 11 cannot express every op of this model'),
        (99, '--opset 99: the installed onnx knows opsets 7 to'),
    ],
)
def test_bad_opset_is_one_line_and_writes_nothing(tiny_segmentor, tmp_path, capsys, opset, message):
    config, checkpoint, _ = tiny_segmentor
    out = tmp_path / 'model.onnx'
    args = [str(config), str(checkpoint), str(out), '--opset', str(opset)]
    assert load_tool('pytorch2onnx').main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f'pytorch2onnx.py: error: {message}') and '\n' not in err
    assert leftovers(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_deploy_test_scores_what_test_py_scores(tiny_segmentor, tiny_onnx, tmp_path, mode):
    from mae_seg.deploy import OnnxSegmentor
    from mae_seg.deploy.evaluate import evaluate_onnx
    from mae_seg.runner import load_config, setup_test_config, test

    config, checkpoint, _ = tiny_segmentor
    options = {'model.test_cfg.mode': mode}
    cfg = load_config(str(config), options)
    setup_test_config(cfg, str(config), str(checkpoint), work_dir=str(tmp_path / 'work'))
    expected = test(cfg)
    actual = evaluate_onnx(load_config(str(config)), OnnxSegmentor(str(tiny_onnx)), mode)
    assert 0 < expected['mIoU'] < 100  # neither all wrong nor all right
    assert actual['mIoU'] == pytest.approx(expected['mIoU'], abs=0.01)
    assert actual['aAcc'] == pytest.approx(expected['aAcc'], abs=0.01)


def test_deploy_test_prints_the_iou_table(tiny_segmentor, tiny_onnx, capsys, mm_log):
    config, _, _ = tiny_segmentor
    assert load_tool('deploy_test').main([str(config), str(tiny_onnx), '--mode', 'whole']) == 0
    assert 'per class results:' in mm_log
    table = next(message for message in mm_log if 'Class' in message and 'IoU' in message)
    assert all(name in table for name in ('wall', 'building', 'sky', 'floor', 'tree'))
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith('aAcc: ')


def test_deploy_test_refuses_a_file_that_is_no_segmentor(tiny_segmentor, tmp_path, capsys):
    config, _, _ = tiny_segmentor
    (tmp_path / 'x.onnx').write_bytes(b'not a model')
    assert load_tool('deploy_test').main([str(config), str(tmp_path / 'x.onnx')]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f'deploy_test.py: error: {tmp_path / "x.onnx"} is not a runnable')
    assert '\n' not in err
