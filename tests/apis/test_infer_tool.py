"""tools/infer.py: label maps and overlays for files, folders and globs; one-line errors."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def infer(load_tool):
    """``infer(*argv)``: the exit status of ``tools/infer.py`` run in this process."""
    return lambda *argv: load_tool('infer.py').main([str(arg) for arg in argv])


def files_under(directory):
    return sorted(str(p.relative_to(directory)) for p in Path(directory).rglob('*') if p.is_file())


def test_segments_folders_and_globs(infer, tiny_model, images, tmp_path, capsys):
    config, checkpoint = tiny_model
    out = tmp_path / 'out'
    folder_a, pattern_b = images[0].parent, images[2].parent / '*.jpg'
    assert infer(config, checkpoint, folder_a, pattern_b, '--out-dir', out, '--device', 'cpu') == 0
    assert files_under(out) == [
        'labels/a/x.png', 'labels/a/y.png', 'labels/b/x.png',
        'overlays/a/x.png', 'overlays/a/y.png', 'overlays/b/x.png',
    ]  # fmt: skip
    for image, name in zip(images, ['a/x', 'a/y', 'b/x']):
        picture = cv2.imread(str(image))
        labels = cv2.imread(str(out / 'labels' / f'{name}.png'), cv2.IMREAD_UNCHANGED)
        overlay = cv2.imread(str(out / 'overlays' / f'{name}.png'))
        assert labels.dtype == np.uint8 and labels.shape == picture.shape[:2]
        assert labels.max() < 5
        assert overlay.shape == picture.shape
        assert not np.array_equal(overlay, picture)  # the prediction is painted on it
    captured = capsys.readouterr()
    assert 'segmenting 3 images on cpu, slide inference' in captured.out


def test_label_map_is_mmseg_inference_model_result(infer, tiny_model, images, tmp_path):
    from mmseg.apis import inference_model, init_model

    config, checkpoint = tiny_model
    out = tmp_path / 'out'
    assert infer(config, checkpoint, images[1], '--out-dir', out, '--batch-size', '1') == 0
    model = init_model(str(config), str(checkpoint), device='cpu')
    with torch.no_grad():
        expected = inference_model(model, str(images[1])).pred_sem_seg.data[0].numpy()
    labels = cv2.imread(str(out / 'labels' / 'y.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(labels, expected)


def test_whole_mode_and_window_batches(infer, tiny_model, images, tmp_path):
    config, checkpoint = tiny_model
    results = {}
    for options in (['--mode', 'slide', '--batch-size', '1'], ['--batch-size', '4'],
                    ['--mode', 'whole']):  # fmt: skip
        out = tmp_path / '_'.join(options)
        assert infer(config, checkpoint, images[1], '--out-dir', out, *options) == 0
        results[' '.join(options)] = cv2.imread(str(out / 'labels' / 'y.png'), -1)
    single, batched, whole = results.values()
    np.testing.assert_array_equal(batched, single)
    assert whole.shape == single.shape


def assert_one_error(captured, *fragments):
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith('infer.py: error: ')
    assert 'Traceback' not in captured.err + captured.out
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_input_and_empty_pattern(infer, tiny_model, tmp_path, capsys):
    config, checkpoint = tiny_model
    out = tmp_path / 'out'
    assert infer(config, checkpoint, tmp_path / 'nope.jpg', '--out-dir', out) == 2
    assert_one_error(capsys.readouterr(), 'nope.jpg does not exist')
    assert infer(config, checkpoint, tmp_path / '*.png', '--out-dir', out) == 2
    assert_one_error(capsys.readouterr(), 'matches no images')
    assert not out.exists()


def test_unreadable_image(infer, tiny_model, images, tmp_path, capsys):
    config, checkpoint = tiny_model
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'not a jpeg at all')
    out = tmp_path / 'out'
    assert infer(config, checkpoint, images[0], broken, '--out-dir', out) == 2
    assert_one_error(capsys.readouterr(), f'cannot read image {broken}')
    assert not out.exists()


def test_checkpoint_that_does_not_fit_the_config(infer, tiny_model, images, tmp_path, capsys):
    config, checkpoint = tiny_model
    state = torch.load(checkpoint, weights_only=True)
    state['state_dict']['decode_head.conv_seg.weight'] = torch.zeros(7, 16, 1, 1)
    del state['state_dict']['backbone.pos_embed']
    other = tmp_path / 'other.pth'
    torch.save(state, other)
    out = tmp_path / 'out'
    assert infer(config, other, images[0], '--out-dir', out) == 2
    assert_one_error(
        capsys.readouterr(),
        f'checkpoint {other} does not fit {config}',
        'missing backbone.pos_embed',
        'decode_head.conv_seg.weight (7, 16, 1, 1) vs (5, 16, 1, 1)',
    )
    assert not out.exists()
    assert infer(config, tmp_path / 'none.pth', images[0], '--out-dir', out) == 2
    assert_one_error(capsys.readouterr(), 'none.pth does not exist')


@pytest.mark.slow
def test_cli_process_exits_2_without_traceback(tiny_model, tmp_path):
    config, checkpoint = tiny_model
    command = [sys.executable, 'tools/infer.py', str(config), str(checkpoint), 'missing.jpg',
               '--out-dir', str(tmp_path)]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == 'infer.py: error: input missing.jpg does not exist'


@pytest.mark.parametrize('device', ['gpu', 'cuda:99'])
def test_bad_device(infer, tiny_model, images, tmp_path, capsys, device):
    config, checkpoint = tiny_model
    assert infer(config, checkpoint, images[0], '--out-dir', tmp_path, '--device', device) == 2
    assert_one_error(capsys.readouterr(), f'--device {device}')


@pytest.mark.parametrize(
    ('option', 'expected'),
    [
        ('model.test_cfg.mode=slid', "model.test_cfg.mode: 'slid' is not 'whole' or 'slide'"),
        ('model.test_cfg.strde=[8,8]', "(did you mean 'stride'?)"),
        ('model.backbone.num_layer=2', "MAEViT takes no argument 'num_layer'"),
        # A value the class refuses when it is built: MAEViT's own ValueError, one line.
        (
            'model.backbone.position_fit=extnd',
            "building the model of {config}: ValueError: position fit 'extnd' is not one of",
        ),
    ],
)
def test_config_mistakes_are_one_line(
    infer, tiny_model, images, tmp_path, capsys, option, expected
):
    config, checkpoint = tiny_model
    out = tmp_path / 'out'
    assert infer(config, checkpoint, images[0], '--out-dir', out, '--cfg-options', option) == 2
    assert_one_error(capsys.readouterr(), expected.format(config=config))
    assert not out.exists()
