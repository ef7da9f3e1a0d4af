"""Each kind of disagreement between a data set, its config and the model, found and named."""

from __future__ import annotations

import numpy as np
import pytest
from folder_data import folder_config, write_pair
from mmengine.registry import init_default_scope
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS
from PIL import Image

from mae_seg.datasets.dataset_check import (
    check_split,
    sampled_split_problems,
    shared_setting_problems,
    split_source,
)
from mae_seg.datasets.label_rules import LabelRules
from mae_seg.datasets.pair_facts import read_pair
from mae_seg.errors import ConfigError
from mae_seg.runner import check_datasets


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')


def problems_of(cfg, key='train_dataloader', sample=None):
    report = check_split(split_source(cfg, key), sample=sample, workers=1)
    return report, [str(problem) for problem in report.problems], report.problems


def test_clean_folder_has_no_problems_and_counts_every_pixel(tmp_path, labels_3x):
    for index in range(3):
        write_pair(tmp_path, 'train', f'a{index}', labels_3x)
    report, lines, _ = problems_of(folder_config(tmp_path))
    assert lines == []
    assert report.checked == 3
    np.testing.assert_array_equal(report.class_pixels, 3 * np.bincount(labels_3x.ravel()))
    assert report.absent_classes == []


def test_class_that_never_occurs_is_named(tmp_path, labels_3x):
    write_pair(tmp_path, 'train', 'a', np.minimum(labels_3x, 1))
    report, lines, _ = problems_of(folder_config(tmp_path))
    assert lines == []
    assert report.absent_classes == ['c2']


def test_label_out_of_range_names_file_value_and_fix(tmp_path, labels_3x):
    labels = labels_3x.copy()
    labels[0, :3] = (3, 4, 7)
    path = write_pair(tmp_path, 'train', 'bad', labels)
    write_pair(tmp_path, 'train', 'good', labels_3x)
    _, lines, problems = problems_of(folder_config(tmp_path))
    assert [problem.kind for problem in problems] == ['label-out-of-range']
    assert lines[0].startswith(f'{path}: annotation values 3, 4, 7 become labels 3, 4, 7')
    assert 'outside num_classes=3 (ignore_index=255)' in lines[0]
    assert 'fix the annotation (the data set lists 3 classes: labels 0-2, 255 ignored)' in lines[0]
    # Without a class list, the fix is the class count that holds every label.
    cfg = folder_config(tmp_path)
    del cfg.train_dataloader.dataset.metainfo
    _, lines, _ = problems_of(cfg)
    assert lines[0].endswith('set num_classes to at least 8 in every head, or fix the annotation')


def test_ignore_index_values_are_fine(tmp_path, labels_3x):
    labels = labels_3x.copy()
    labels[:4] = 255
    write_pair(tmp_path, 'train', 'a', labels)
    report, lines, _ = problems_of(folder_config(tmp_path))
    assert lines == []
    assert report.ignored_pixels == 4 * 24


def test_reduce_zero_label_shifts_values_as_the_loader_does(tmp_path, labels_3x):
    # Values 0..3 with reduce_zero_label and 3 classes: 0 ignored, 1..3 -> 0..2: all valid.
    write_pair(tmp_path, 'train', 'a', labels_3x + 1)
    labels = labels_3x + 1
    labels[0, 0] = 0  # was class 0
    write_pair(tmp_path, 'train', 'b', labels)
    report, lines, _ = problems_of(folder_config(tmp_path, reduce_zero_label=True))
    assert lines == []
    expected = 2 * np.bincount(labels_3x.ravel()) - [1, 0, 0]
    np.testing.assert_array_equal(report.class_pixels, expected)
    assert report.ignored_pixels == 1
    # Without it, value 3 is out of range and the fix mentions reduce_zero_label.
    _, lines, _ = problems_of(folder_config(tmp_path))
    assert any('reduce_zero_label=True' in line for line in lines)


@pytest.mark.parametrize('reduce_zero_label', [False, True])
def test_label_rules_match_mmseg_load_annotations(tmp_path, reduce_zero_label):
    """Oracle: the labels mmseg's LoadAnnotations produces from the same file."""
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    path = write_pair(tmp_path, 'train', 'all', values)
    label_map = {0: 2, 1: 0, 2: 255, 3: 1}
    loaded = LoadAnnotations()(
        dict(
            seg_map_path=str(path),
            reduce_zero_label=reduce_zero_label,
            label_map=label_map,
            seg_fields=[],
        )
    )['gt_seg_map']
    rules = LabelRules(4, reduce_zero_label=reduce_zero_label, label_map=label_map)
    np.testing.assert_array_equal(rules.labels_of(values), loaded)


def test_metainfo_subset_of_ade20k_classes_uses_the_label_map(tmp_path, labels_3x):
    """ADE20KDataset with 3 of its classes: raw values beyond them map to 255, not an error."""
    labels = labels_3x + 1
    labels[0, 0] = 100  # class 99 of ADE20K, not listed: becomes 255
    root = tmp_path
    (root / 'images' / 'training').mkdir(parents=True)
    (root / 'annotations' / 'training').mkdir(parents=True)
    Image.fromarray(np.zeros((16, 24, 3), np.uint8)).save(root / 'images/training/a.jpg')
    Image.fromarray(labels).save(root / 'annotations/training/a.png')
    cfg = folder_config(root)
    cfg.train_dataloader.dataset = dict(
        type='ADE20KDataset',
        data_root=str(root),
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        metainfo=dict(classes=('wall', 'building', 'sky')),
    )
    report, lines, _ = problems_of(cfg)
    assert lines == []
    assert report.ignored_pixels == 1
    cfg.model.decode_head.num_classes = 2
    cfg.model.auxiliary_head.num_classes = 2
    _, lines, _ = problems_of(cfg)
    assert len(lines) == 1 and 'become labels 2' in lines[0]


def test_palette_mode_annotation_holds_indices(tmp_path, labels_3x):
    image = Image.fromarray(labels_3x).convert('P')
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    write_pair(tmp_path, 'train', 'a', labels_3x)
    image.save(tmp_path / 'annotations/train/a.png')
    report, lines, _ = problems_of(folder_config(tmp_path))
    assert lines == [] and report.facts[0].seg_mode == 'P'
    np.testing.assert_array_equal(report.class_pixels, np.bincount(labels_3x.ravel()))


@pytest.mark.parametrize(
    ('mode', 'channels', 'fix'),
    [
        ('RGB', 3, "save one of them as a one-channel ('L') PNG"),
        ('RGBA', 4, 'colour-coded mask'),
        ('LA', 2, 'colour-coded mask'),
    ],
)
def test_multi_channel_masks_are_named(tmp_path, labels_3x, mode, channels, fix):
    stacked = np.repeat(labels_3x[..., None], channels, axis=2)
    if mode != 'RGB':
        stacked[..., -1] = 255  # alpha
    path = write_pair(tmp_path, 'train', 'a', stacked, mode)
    _, lines, problems = problems_of(folder_config(tmp_path))
    assert [problem.kind for problem in problems] == ['annotation-channels']
    assert lines[0].startswith(f"{path}: annotation mode '{mode}' has {channels} channels")
    assert fix in lines[0]


def test_colour_coded_rgb_mask_points_to_the_converter(tmp_path, labels_3x):
    colours = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0]], np.uint8)
    write_pair(tmp_path, 'train', 'a', colours[labels_3x], 'RGB')
    _, lines, _ = problems_of(folder_config(tmp_path))
    assert 'color_masks_to_index.py' in lines[0]


def test_16_bit_masks_wrap_only_above_255(tmp_path, labels_3x):
    write_pair(tmp_path, 'train', 'small', labels_3x.astype(np.uint16), 'I;16')
    _, lines, _ = problems_of(folder_config(tmp_path))
    assert lines == []
    wide = labels_3x.astype(np.uint16)
    wide[0, 0] = 257  # the loader reads 257 % 256 = 1: silently class 1
    path = write_pair(tmp_path, 'train', 'wide', wide, 'I;16')
    _, lines, problems = problems_of(folder_config(tmp_path))
    assert [problem.kind for problem in problems] == ['annotation-wide-values']
    assert lines[0].startswith(f'{path}: I;16 annotation holds values above 255 (257)')


def test_missing_annotation_and_annotation_without_image(tmp_path, labels_3x):
    write_pair(tmp_path, 'train', 'a', labels_3x)
    missing = write_pair(tmp_path, 'train', 'b', labels_3x)
    missing.unlink()
    write_pair(tmp_path, 'train', 'c', labels_3x)
    (tmp_path / 'images/train/c.png').unlink()
    _, lines, problems = problems_of(folder_config(tmp_path))
    kinds = sorted(problem.kind for problem in problems)
    assert kinds == ['annotation-missing', 'annotation-without-image']
    assert any(
        line.startswith(f'{missing}: no annotation for image {tmp_path}/images/train/b.png')
        for line in lines
    )
    assert any(
        line.startswith(f'{tmp_path}/annotations/train/c.png: annotation has no image')
        for line in lines
    )


def test_seg_map_suffix_mismatch_is_one_line_with_the_suffix(tmp_path, labels_3x):
    for name in 'abc':
        path = write_pair(tmp_path, 'train', name, labels_3x)
        path.rename(path.with_name(f'{name}_mask.png'))
    _, lines, _ = problems_of(folder_config(tmp_path))
    assert len(lines) == 1
    assert "3 of 3 images have no annotation ending in seg_map_suffix='.png'" in lines[0]
    assert "set seg_map_suffix='_mask.png' in train_dataloader.dataset" in lines[0]


def test_unreadable_image_and_annotation(tmp_path, labels_3x):
    write_pair(tmp_path, 'train', 'a', labels_3x)
    (tmp_path / 'images/train/a.png').write_bytes(b'not an image')
    noise = np.random.default_rng(0).integers(0, 3, (64, 64), dtype=np.uint8)
    annotation = write_pair(tmp_path, 'train', 'b', noise)
    data = annotation.read_bytes()
    annotation.write_bytes(data[: len(data) // 2])  # the header is there, half the pixels not
    _, lines, problems = problems_of(folder_config(tmp_path))
    assert sorted(problem.kind for problem in problems) == [
        'annotation-unreadable',
        'image-unreadable',
    ]
    assert any(line.startswith(f'{annotation}: annotation cannot be read') for line in lines)


def test_size_mismatch(tmp_path, labels_3x):
    path = write_pair(tmp_path, 'train', 'a', labels_3x)
    Image.fromarray(labels_3x[:, :20]).save(path)
    _, lines, problems = problems_of(folder_config(tmp_path))
    assert [problem.kind for problem in problems] == ['size-mismatch']
    assert 'annotation is 20x16 but its image' in lines[0] and 'loads as 24x16' in lines[0]


def test_exif_rotated_image_is_sized_as_the_loader_reads_it(tmp_path, labels_3x):
    """Oracle: mmcv's LoadImageFromFile turns images by their EXIF orientation."""
    write_pair(tmp_path, 'train', 'a', labels_3x)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    image_path = tmp_path / 'images/train/a.jpg'
    Image.fromarray(np.zeros((16, 24, 3), np.uint8)).save(image_path, exif=exif)
    (tmp_path / 'images/train/a.png').unlink()
    loaded = TRANSFORMS.build(dict(type='LoadImageFromFile'))(dict(img_path=str(image_path)))
    facts = read_pair(str(image_path), str(tmp_path / 'annotations/train/a.png'))
    assert facts.image_size == loaded['img'].shape[1::-1] == (16, 24)
    cfg = folder_config(tmp_path)
    cfg.train_dataloader.dataset.img_suffix = '.jpg'
    _, lines, _ = problems_of(cfg)
    assert len(lines) == 1 and 'EXIF orientation' in lines[0]


def test_class_list_and_heads_must_agree(tmp_path, labels_3x):
    write_pair(tmp_path, 'train', 'a', labels_3x)
    cfg = folder_config(tmp_path, num_classes=3)
    assert shared_setting_problems(cfg, 'train_dataloader') == []
    cfg.model.auxiliary_head.num_classes = 4
    [problem] = shared_setting_problems(cfg, 'train_dataloader')
    assert 'model.decode_head.num_classes=3, model.auxiliary_head.num_classes=4' in str(problem)
    cfg.model.auxiliary_head.num_classes = 3
    cfg.train_dataloader.dataset.metainfo = dict(classes=('a', 'b'))
    [problem] = shared_setting_problems(cfg, 'train_dataloader')
    assert 'lists 2 classes but model.decode_head.num_classes=3' in str(problem)


def test_sampled_check_reads_a_sample_but_finds_every_missing_annotation(tmp_path, labels_3x):
    for index in range(60):
        write_pair(tmp_path, 'train', f'a{index:02d}', labels_3x)
    (tmp_path / 'annotations/train/a37.png').unlink()
    cfg = folder_config(tmp_path)
    report = check_split(split_source(cfg, 'train_dataloader'), sample=10, workers=1)
    assert report.checked == 10
    assert [problem.kind for problem in report.problems] == ['annotation-missing']
    assert 'a37.png' in report.problems[0].path


def test_check_datasets_raises_one_line_with_the_first_problem(tmp_path, labels_3x):
    for index in range(4):
        labels = labels_3x.copy()
        labels[0, 0] = 5
        write_pair(tmp_path, 'train', f'a{index}', labels)
    cfg = folder_config(tmp_path)
    problems = sampled_split_problems(cfg, 'train_dataloader')
    assert len(problems) == 4
    with pytest.raises(ConfigError) as error:
        check_datasets(cfg, ('train_dataloader',))
    message = str(error.value)
    assert '\n' not in message
    assert message.startswith('train_dataloader: ') and 'become labels 5' in message
    # The four annotations are summed up, not counted again as "more".
    assert message.endswith(
        'labels 5 are out of range in 4 of the 4 annotations sampled '
        '(tools/analysis/check_dataset.py lists them all)'
    )


def test_loss_and_metric_must_skip_the_same_label(tmp_path, labels_3x):
    write_pair(tmp_path, 'train', 'a', labels_3x)
    cfg = folder_config(tmp_path)
    cfg.val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
    assert shared_setting_problems(cfg, 'train_dataloader') == []
    cfg.model.decode_head.ignore_index = 0
    [problem] = shared_setting_problems(cfg, 'train_dataloader')
    assert problem.kind == 'ignore-index'
    assert 'model.decode_head.ignore_index=0, model.auxiliary_head.ignore_index=255, ' in str(
        problem
    )
    assert 'val_evaluator.ignore_index=255' in str(problem)


def test_reduce_zero_label_set_twice_must_agree(tmp_path, labels_3x):
    """mmseg's LoadAnnotations asserts mid-run when it disagrees with the data set."""
    write_pair(tmp_path, 'train', 'a', labels_3x)
    cfg = folder_config(tmp_path)
    cfg.train_dataloader.dataset.pipeline[1]['reduce_zero_label'] = False
    assert shared_setting_problems(cfg, 'train_dataloader') == []
    cfg.train_dataloader.dataset.pipeline[1]['reduce_zero_label'] = True
    [problem] = shared_setting_problems(cfg, 'train_dataloader')
    assert str(problem).startswith(
        'config: train_dataloader: LoadAnnotations has reduce_zero_label=True but the data set '
        'False; set it once'
    )


def test_check_dataset_names_an_empty_split(tmp_path, labels_3x):
    from mae_seg.datasets.dataset_report import check_dataset

    write_pair(tmp_path, 'train', 'a', labels_3x)
    (tmp_path / 'images' / 'val').mkdir()
    (tmp_path / 'annotations' / 'val').mkdir()
    report = check_dataset(folder_config(tmp_path), workers=1)
    assert [str(problem) for problem in report.problems] == [
        'val_dataloader: no images found; check data_root, data_prefix.img_path and img_suffix'
    ]
    assert len(report.splits) == 1 and report.splits[0].checked == 1
