"""The quick start's data set, stand-in MAE checkpoint and report."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS
from PIL import Image
from quick_start_kit import (
    CLASSES,
    ShapesSpec,
    chance_miou,
    class_table,
    make_shapes_dataset,
    official_mae_state_dict,
    save_official_mae_checkpoint,
)

from mae_seg.models import MAEViT

ROOT = Path(__file__).resolve().parents[2]
SPEC = ShapesSpec(num_train=6, num_val=3, short_side=64)


@pytest.fixture(scope='module')
def shapes_root(tmp_path_factory):
    return make_shapes_dataset(tmp_path_factory.mktemp('a') / 'ADEChallengeData2016', SPEC)


def test_layout_is_ade20k(shapes_root):
    for split, prefix, count in (('training', 'train', 6), ('validation', 'val', 3)):
        images = sorted((shapes_root / 'images' / split).glob('*.jpg'))
        labels = sorted((shapes_root / 'annotations' / split).glob('*.png'))
        assert [p.stem for p in images] == [p.stem for p in labels]
        assert len(images) == count and images[0].name == f'ADE_{prefix}_00000001.jpg'
        image, label = cv2.imread(str(images[0])), cv2.imread(str(labels[0]), -1)
        assert image.shape[:2] == label.shape and min(label.shape) == 64


def test_every_class_and_ignore_appear(shapes_root):
    labels = np.concatenate(
        [cv2.imread(str(p), -1).ravel() for p in (shapes_root / 'annotations').rglob('*.png')]
    )
    assert set(np.unique(labels)) == set(range(len(CLASSES) + 1))  # 0 = unlabelled


def test_same_spec_same_files(shapes_root, tmp_path):
    again = make_shapes_dataset(tmp_path / 'ADEChallengeData2016', SPEC)
    for path in shapes_root.rglob('*.png'):
        assert path.read_bytes() == (again / path.relative_to(shapes_root)).read_bytes()


def test_read_by_mmseg_ade20k_dataset(shapes_root):
    init_default_scope('mmseg')
    dataset = DATASETS.build(
        dict(
            type='ADE20KDataset',
            data_root=str(shapes_root),
            data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
            metainfo=dict(classes=CLASSES),
            pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')],
        )
    )
    assert len(dataset) == 3 and dataset.metainfo['classes'] == CLASSES
    raw = cv2.imread(dataset[0]['seg_map_path'], -1)
    loaded = dataset[0]['gt_seg_map']
    np.testing.assert_array_equal(loaded[raw == 0], 255)  # 0 is ignored
    np.testing.assert_array_equal(loaded[raw > 0], raw[raw > 0] - 1)


def test_checkpoint_has_the_official_mae_layout():
    state = official_mae_state_dict(embed_dims=64, depth=2, num_heads=1)
    assert state['pos_embed'].shape == (1, 197, 64)
    assert state['patch_embed.proj.weight'].shape == (64, 3, 16, 16)
    assert {'cls_token', 'norm.weight', 'blocks.1.attn.qkv.weight', 'blocks.1.mlp.fc2.bias'} <= (
        state.keys()
    )
    assert 'mask_token' in state and any(k.startswith('decoder_blocks.') for k in state)
    assert not any(k.startswith('head') for k in state)
    again = official_mae_state_dict(embed_dims=64, depth=2, num_heads=1)
    torch.testing.assert_close(state['cls_token'], again['cls_token'])  # seeded


def test_converted_checkpoint_loads_into_the_quick_start_backbone(tmp_path, mm_log):
    source = save_official_mae_checkpoint(tmp_path / 'mae.pth')
    converter = ROOT / 'tools/model_converters/mae2mmseg.py'
    result = subprocess.run(
        [sys.executable, str(converter), str(source), str(tmp_path / 'c.pth')],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    backbone = MAEViT(img_size=128, embed_dims=128, num_layers=4, num_heads=2, init_values=1.0)
    backbone.load_pretrained(str(tmp_path / 'c.pth'))
    patch = torch.load(source, weights_only=True)['model']['patch_embed.proj.weight']
    torch.testing.assert_close(backbone.patch_embed.projection.weight, patch, rtol=0, atol=0)
    assert 'layers.{0-3}.ffn' not in ' '.join(mm_log)


def test_class_table_is_the_last_one_in_the_log(tmp_path):
    log = tmp_path / 'run.log'
    log.write_text(
        '11/23 - mmengine - INFO - per class results:\n11/23 - mmengine - INFO - \n'
        '+-------+\n| old   |\n+-------+\n'
        '11/23 - mmengine - INFO - per class results:\n11/23 - mmengine - INFO - \n'
        '+-------+\n| new   |\n+-------+\n11/23 - mmengine - INFO - Iter(test) mIoU: 1\n'
    )
    assert class_table(log) == '+-------+\n| new   |\n+-------+'


def test_chance_miou_of_two_equal_classes_is_a_third(tmp_path):
    labels = np.array([[1, 1, 2, 2, 0]], np.uint8)  # 0 is ignored
    cv2.imwrite(str(tmp_path / 'a.png'), labels)
    assert chance_miou(tmp_path, num_classes=2) == pytest.approx(100 / 3)


def test_colour_masks_convert_back_to_the_annotations(tmp_path):
    """folder-data --colour-masks, then color_masks_to_index.py with its labelmap: the
    annotations again, value for value (the labelmap's entry 0 is the unlabelled colour)."""
    from quick_start_kit import FOLDER_CLASSES

    from mae_seg.datasets.color_masks import convert_colour_masks, read_class_colours

    root, masks = tmp_path / 'own', tmp_path / 'masks_rgb'
    args = [sys.executable, str(ROOT / 'tools/quick_start.py'), 'folder-data', str(root)]
    args += ['--num-train', '3', '--num-val', '1', '--short-side', '32']
    subprocess.run([*args, '--colour-masks', str(masks)], check=True, capture_output=True)
    classes = read_class_colours(masks / 'labelmap.txt')
    assert classes.names == ('unlabelled', *FOLDER_CLASSES)
    for split in ('train', 'val'):
        report = convert_colour_masks(masks / split, tmp_path / 'index' / split, classes)
        assert report.unknown == [] and len(report.converted) == {'train': 3, 'val': 1}[split]
        for name in report.converted:
            original = cv2.imread(str(root / 'annotations' / split / Path(name).name), -1)
            assert cv2.imread(str(masks / split / Path(name).name)).ndim == 3
            np.testing.assert_array_equal(np.asarray(Image.open(name)), original)
