"""tools/analysis/check_dataset.py, and the sampled check in tools/train.py --check / test.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from PIL import Image
from quick_start_kit import (
    FOLDER_CLASSES,
    ShapesSpec,
    make_folder_dataset,
    make_shapes_dataset,
    plant_faults,
)

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / 'configs/quick_start/mae-tiny_upernet_2xb4-400_shapes-128x128.py'
TINY_OWN = ROOT / 'configs/quick_start/mae-tiny_upernet_1xb4-400_own-data-128x128.py'
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')

# The own-data config on the shapes folder set: 5 classes, 0 = unlabelled.
FOLDER_CONFIG = """
_base_ = [{base!r}]
data_root = {data_root!r}
classes = {classes!r}
model = dict(pretrained=None, decode_head=dict(num_classes=5), auxiliary_head=dict(num_classes=5))
folder = dict(data_root=data_root, img_suffix='.jpg', reduce_zero_label=True,
              metainfo=dict(classes=classes, palette=[]))
train_dataloader = dict(dataset=folder)
val_dataloader = dict(dataset=folder)
test_dataloader = val_dataloader
"""


def folder_config(tmp_path, faults=False):
    root = tmp_path / 'folder'
    names = make_folder_dataset(root, num_train=8, num_val=2, short_side=32)
    planted = plant_faults(root, names) if faults else {}
    config = tmp_path / 'folder_config.py'
    config.write_text(
        FOLDER_CONFIG.format(base=str(TINY_OWN), data_root=str(root), classes=FOLDER_CLASSES)
    )
    return config, planted


def error_lines(captured, tool):
    assert 'Traceback' not in captured.err + captured.out
    return [line for line in captured.err.splitlines() if line.startswith(f'{tool}: error: ')]


def test_clean_folder_set_passes_with_table_plot_and_overlays(load_tool, tmp_path, capsys):
    config, _ = folder_config(tmp_path)
    out = tmp_path / 'check'
    assert load_tool('analysis/check_dataset.py').main([str(config), '--out-dir', str(out)]) == 0
    captured = capsys.readouterr()
    assert error_lines(captured, 'check_dataset.py') == []
    assert 'train_dataloader: 8 images, 8 pairs read, 0 annotations missing' in captured.out
    assert 'val_dataloader: 2 images, 2 pairs read' in captured.out
    assert 'test_dataloader' not in captured.out  # the same data set as val, read once
    for name in FOLDER_CLASSES:
        assert f' {name} ' in captured.out
    for png in ('class_pixels_train.png', 'overlays_train.png', 'class_pixels_val.png'):
        with Image.open(out / png) as image:
            assert image.format == 'PNG' and image.width > 100
    assert not (out / 'problems.txt').exists()


def test_planted_faults_are_each_one_line_and_exit_2(load_tool, tmp_path, capsys):
    config, planted = folder_config(tmp_path, faults=True)
    out = tmp_path / 'check'
    assert load_tool('analysis/check_dataset.py').main([str(config), '--out-dir', str(out)]) == 2
    lines = error_lines(capsys.readouterr(), 'check_dataset.py')
    assert len(lines) == 4
    expected = {
        'labels out of range': 'annotation values 9 become labels 8, outside num_classes=5',
        'RGB mask': "annotation mode 'RGB' has 3 channels",
        'missing annotation': 'no annotation for image',
        'size mismatch': 'annotation is ',
    }
    for fault, path in planted.items():
        [line] = [line for line in lines if f'error: {path}: ' in line]
        assert expected[fault] in line
    assert len((out / 'problems.txt').read_text().splitlines()) == 4


def test_missing_config_and_data_root_are_one_line(load_tool, tmp_path, capsys):
    tool = load_tool('analysis/check_dataset.py')
    assert tool.main([str(tmp_path / 'none.py')]) == 2
    [line] = error_lines(capsys.readouterr(), 'check_dataset.py')
    assert line.endswith('none.py does not exist')
    config, _ = folder_config(tmp_path)
    assert (
        tool.main(
            [str(config), '--cfg-options', f'train_dataloader.dataset.data_root={tmp_path}/x']
        )
        == 2
    )
    [line] = error_lines(capsys.readouterr(), 'check_dataset.py')
    assert 'train_dataloader: ' in line and 'does not exist' in line


@pytest.fixture(scope='module')
def shapes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes') / 'ADEChallengeData2016'
    return make_shapes_dataset(root, ShapesSpec(num_train=6, num_val=2, short_side=48))


def quick_options(data_root, *extra):
    options = [f'{key}.dataset.data_root={data_root}' for key in LOADERS]
    return ['--cfg-options', *options, 'model.pretrained=None', *extra]


def assert_error_lines(captured, tool, count=1):
    """``count`` lines on stderr (one per dataloader checked), each a whole problem."""
    lines = captured.err.strip().splitlines()
    assert len(lines) == count, captured.err
    assert all(line.startswith(f'{tool}: error: ') for line in lines)
    assert 'Traceback' not in captured.out + captured.err
    return lines


def test_train_check_names_labels_beyond_num_classes(load_tool, shapes_root, capsys):
    """The issue's row: 3 classes on 5-class data trained to 'Target 3 is out of bounds'."""
    argv = [
        str(QUICK),
        '--check',
        *quick_options(
            shapes_root, 'model.decode_head.num_classes=3', 'model.auxiliary_head.num_classes=3'
        ),
    ]
    assert load_tool('train.py').main(argv) == 2
    line, val_line = assert_error_lines(capsys.readouterr(), 'train.py', count=2)
    assert val_line.startswith('train.py: error: val_dataloader: ')
    assert line.startswith(
        f'train.py: error: train_dataloader: {shapes_root}/annotations/training/'
    )
    assert 'outside num_classes=3' in line
    # Counted against the pairs read; "more" counts only the other problems.
    assert 'labels 3, 4 are out of range in 5 of the 6 annotations sampled (1 more; ' in line
    assert 'set num_classes=5 in every head (the data set lists 5 classes)' in line


@pytest.fixture
def rgb_shapes_root(tmp_path):
    root = make_shapes_dataset(tmp_path / 'rgb', ShapesSpec(num_train=4, num_val=2, short_side=48))
    for path in (root / 'annotations').rglob('*.png'):
        labels = np.asarray(Image.open(path))
        Image.fromarray(np.repeat(labels[..., None], 3, axis=2)).save(path)
    return root


def quick_start_model():
    """The quick-start segmentor with random weights (a checkpoint that fits its config)."""
    init_default_scope('mmseg')
    cfg = Config.fromfile(str(QUICK))
    cfg.model.pretrained = None
    return MODELS.build(cfg.model)


def test_rgb_annotations_stop_train_check_and_test(load_tool, rgb_shapes_root, tmp_path, capsys):
    """The issue's row: index masks re-saved as 3-channel RGB."""
    assert load_tool('train.py').main([str(QUICK), '--check', *quick_options(rgb_shapes_root)]) == 2
    for line in assert_error_lines(capsys.readouterr(), 'train.py', count=2):
        assert "annotation mode 'RGB' has 3 channels" in line
    checkpoint = tmp_path / 'model.pth'
    torch.save(dict(state_dict=quick_start_model().state_dict()), checkpoint)
    assert (
        load_tool('test.py').main([str(QUICK), str(checkpoint), *quick_options(rgb_shapes_root)])
        == 2
    )
    [line] = assert_error_lines(capsys.readouterr(), 'test.py')
    assert line.startswith(
        f'test.py: error: test_dataloader: {rgb_shapes_root}/annotations/validation/'
    )
    assert "save one of them as a one-channel ('L') PNG" in line


@pytest.mark.parametrize(
    ('option', 'expected'),
    [
        ('train_dataloader.dataset.type=Foo', "'Foo' is not a registered dataset type"),
        ('train_dataloader.dataset.seg_map_sufix=.png', "(did you mean 'seg_map_suffix'?)"),
    ],
)
def test_config_mistakes_are_one_line_before_reading_data(
    load_tool, tmp_path, capsys, option, expected
):
    config, _ = folder_config(tmp_path)
    assert load_tool('analysis/check_dataset.py').main([str(config), '--cfg-options', option]) == 2
    [line] = error_lines(capsys.readouterr(), 'check_dataset.py')
    assert expected in line
