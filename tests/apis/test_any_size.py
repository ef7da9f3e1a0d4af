"""Inference at any image size and aspect ratio, smaller than a patch or a window included."""

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmseg.models import EncoderDecoder

from mae_seg.apis.inference import ImageJob, build_segmentor, fit_dataset_meta, segment_image
from mae_seg.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

NO_RESIZE = """
_base_ = [{config!r}]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackSegInputs')]
"""
SIZES = [(1, 1), (10, 10), (15, 300), (300, 15), (33, 47), (70, 100)]


@pytest.fixture(scope='module')
def no_resize(tiny_model, tmp_path_factory):
    """The tiny model's config with a test pipeline that keeps every image's size."""
    config, checkpoint = tiny_model
    path = tmp_path_factory.mktemp('no_resize') / 'no_resize.py'
    path.write_text(NO_RESIZE.format(config=str(config)))
    return path, checkpoint


class _Visualizer:
    def add_datasample(self, *args, **kwargs):
        self.image = args[1]

    def get_image(self):
        return self.image


@pytest.mark.parametrize('mode', ['whole', 'slide'])
@pytest.mark.parametrize('size', SIZES, ids=[f'{h}x{w}' for h, w in SIZES])
def test_label_map_of_the_image_size(no_resize, tmp_path, mode, size):
    config, checkpoint = no_resize
    model = build_segmentor(str(config), str(checkpoint), mode=mode)
    image = tmp_path / 'image.png'
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8))
    job = ImageJob(str(image), str(tmp_path / 'label.png'), str(tmp_path / 'overlay.png'))
    labels = segment_image(model, job, _Visualizer())
    assert labels.shape == size
    assert cv2.imread(job.label_map, cv2.IMREAD_UNCHANGED).shape == size


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_small_image_logits_are_mmseg_on_the_padded_image(no_resize, mode):
    """The padding is mmseg's own training padding: mmseg's inference on the image padded
    by hand, cut back, is the oracle."""
    config, checkpoint = no_resize
    model = build_segmentor(str(config), str(checkpoint), mode=mode)
    image = torch.randn(1, 3, 10, 37)
    metas = [dict(img_shape=(10, 37), ori_shape=(10, 37), pad_shape=(10, 37))]
    with torch.no_grad():
        ours = model.inference(image, [dict(m) for m in metas])
        padded = torch.nn.functional.pad(image, (0, 64 - 37, 0, 64 - 10))
        padded_metas = [dict(m, img_shape=(64, 64)) for m in metas]
        inference = getattr(EncoderDecoder, f'{mode}_inference')
        expected = inference(model, padded, padded_metas)[:, :, :10, :37]
    assert ours.shape == (1, 5, 10, 37)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_large_images_are_not_padded(no_resize):
    config, checkpoint = no_resize
    model = build_segmentor(str(config), str(checkpoint), mode='whole')
    image = torch.randn(1, 3, 70, 100)
    metas = [dict(img_shape=(70, 100), ori_shape=(70, 100), pad_shape=(70, 100))]
    with torch.no_grad():
        ours = model.inference(image, [dict(m) for m in metas])
        expected = EncoderDecoder.whole_inference(model, image, [dict(m) for m in metas])
    torch.testing.assert_close(ours, expected, atol=0, rtol=0)


def load_infer():
    spec = importlib.util.spec_from_file_location('tool_infer', ROOT / 'tools' / 'infer.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_infer_tool_on_a_10x10_png(no_resize, tmp_path):
    config, checkpoint = no_resize
    image = tmp_path / 'tiny.png'
    cv2.imwrite(str(image), np.full((10, 10, 3), 128, np.uint8))
    assert (
        load_infer().main(
            [str(config), str(checkpoint), str(image), '--out-dir', str(tmp_path / 'out')]
        )
        == 0
    )
    assert cv2.imread(str(tmp_path / 'out/labels/tiny.png'), cv2.IMREAD_UNCHANGED).shape == (10, 10)


def save_with_meta(tiny_model, tmp_path, dataset_meta):
    config, checkpoint = tiny_model
    state = torch.load(checkpoint, weights_only=True)
    state['meta'] = {'dataset_meta': dataset_meta} if dataset_meta is not None else {}
    path = tmp_path / 'meta.pth'
    torch.save(state, path)
    return config, path


@pytest.mark.parametrize(
    'dataset_meta',
    [dict(classes=('a', 'b', 'c', 'd', 'e'), palette=None), dict(palette=None), None,
     dict(classes=('a', 'b', 'c', 'd', 'e'), palette=[[0, 0, 0]])],
    ids=['palette-none', 'no-classes', 'no-meta', 'short-palette'],
)  # fmt: skip
def test_checkpoint_meta_without_a_fitting_palette(tiny_model, images, tmp_path, dataset_meta):
    config, path = save_with_meta(tiny_model, tmp_path, dataset_meta)
    out = tmp_path / 'out'
    assert load_infer().main([str(config), str(path), str(images[0]), '--out-dir', str(out)]) == 0
    assert (out / 'overlays/x.png').is_file()


def test_class_names_of_another_count_are_an_error(tiny_model, images, tmp_path, capsys):
    config, path = save_with_meta(tiny_model, tmp_path, dict(classes=('a', 'b', 'c')))
    assert (
        load_infer().main(
            [str(config), str(path), str(images[0]), '--out-dir', str(tmp_path / 'o')]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err == (
        f'infer.py: error: checkpoint {path} names 3 classes in meta.dataset_meta and its model '
        'has 5 outputs: use the config the checkpoint was trained with'
    )


def test_generated_palette_is_fixed_and_fits():
    meta = fit_dataset_meta(dict(classes=('x', 'y')), 2, 'c')
    assert meta['classes'] == ('x', 'y') and len(meta['palette']) == 2
    assert fit_dataset_meta(None, 2, 'c')['palette'] == meta['palette']
    with pytest.raises(ConfigError):
        fit_dataset_meta(dict(classes=('x',)), 2, 'c')
