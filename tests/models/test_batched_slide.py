"""Batched sliding windows against mmseg's one-window-at-a-time slide inference."""

import copy

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.models import EncoderDecoder, SegTTAModel
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mae_seg.models import BatchedSlideEncoderDecoder, BatchedSlideSegTTAModel
from mae_seg.models.segmentors import sliding_windows

NORM = dict(type='BN', requires_grad=True)
MODEL = dict(
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
    ),
    backbone=dict(
        type='MAEViT', img_size=(64, 64), embed_dims=64, num_layers=4, num_heads=2,
        out_indices=[0, 1, 2, 3],
    ),
    neck=dict(type='Feature2Pyramid', embed_dim=64, rescales=[4, 2, 1, 0.5]),
    decode_head=dict(
        type='UPerHead', in_channels=[64] * 4, in_index=[0, 1, 2, 3], pool_scales=(1, 2),
        channels=16, num_classes=5, norm_cfg=NORM, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0),
    ),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(64, 64), stride=(43, 43)),
)  # fmt: skip


@pytest.fixture(scope='module')
def segmentors():
    """``(mmseg's EncoderDecoder, BatchedSlideEncoderDecoder)`` with the same random weights."""
    init_default_scope('mmseg')
    torch.manual_seed(0)
    reference = MODELS.build(ConfigDict(MODEL, type='EncoderDecoder')).eval()
    with torch.no_grad():
        for name, param in reference.named_parameters():
            param.add_(torch.randn_like(param) * (0.5 if 'relative_position' in name else 0.02))
    ours = MODELS.build(ConfigDict(MODEL, type='BatchedSlideEncoderDecoder')).eval()
    ours.load_state_dict(reference.state_dict())
    assert type(reference) is EncoderDecoder and isinstance(ours, BatchedSlideEncoderDecoder)
    return reference, ours


def metas(batch, height, width):
    shape = (height, width)
    return [dict(ori_shape=shape, img_shape=shape, pad_shape=shape)] * batch


def mmseg_slide(reference, inputs, crop=(64, 64)):
    """mmseg's slide inference, on the image padded to at least one window as ours pads it
    (bottom and right, the preprocessor's pad value) and cut back: mmseg itself runs a
    smaller window on a smaller image, unlike anything the model was trained on."""
    height, width = inputs.shape[2:]
    padded = torch.nn.functional.pad(
        inputs, (0, max(crop[1] - width, 0), 0, max(crop[0] - height, 0))
    )
    logits = reference.slide_inference(padded, metas(inputs.shape[0], *padded.shape[2:]))
    return logits[:, :, :height, :width]


@pytest.mark.parametrize('window_batch_size', [1, 3])
@pytest.mark.parametrize('size', [(100, 150), (48, 80), (64, 64)])
def test_logits_equal_mmseg_slide_inference(segmentors, size, window_batch_size):
    reference, ours = segmentors
    ours.test_cfg.window_batch_size = window_batch_size
    inputs = torch.randn(2, 3, *size)
    with torch.no_grad():
        expected = mmseg_slide(reference, inputs)
        actual = ours.slide_inference(inputs, metas(2, *size))
    assert actual.shape == (2, 5, *size)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_windows_are_mmseg_windows():
    # 100 px, crop 64, stride 43: windows at 0 and 43 -> moved back to end at 100.
    assert sliding_windows((100, 64), (64, 64), (43, 43)) == [(0, 64, 0, 64), (36, 100, 0, 64)]
    assert sliding_windows((48, 80), (64, 64), (43, 43)) == [(0, 48, 0, 64), (0, 48, 16, 80)]


def test_windows_of_several_images_batched_together(segmentors):
    """One call for views of different sizes gives each view's own slide inference."""
    reference, ours = segmentors
    ours.test_cfg.window_batch_size = 8
    views = [torch.randn(1, 3, 100, 150), torch.randn(1, 3, 64, 90), torch.randn(1, 3, 48, 80)]
    with torch.no_grad():
        actual = ours.slide_logits(views, [metas(1, *v.shape[2:]) for v in views])
        for view, logits in zip(views, actual):
            expected = mmseg_slide(reference, view)
            torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def tta_batch(image, scales):
    """A TestTimeAug batch of one image: each scale, unflipped and flipped."""
    inputs, samples = [], []
    for height, width in scales:
        resized = torch.nn.functional.interpolate(image[None].float(), size=(height, width))[0]
        for flip in (False, True):
            view = resized.flip(-1) if flip else resized
            sample = SegDataSample(
                metainfo=dict(
                    img_path='image.jpg',
                    ori_shape=tuple(image.shape[1:]),
                    img_shape=(height, width),
                    flip=flip,
                    flip_direction='horizontal' if flip else None,
                )
            )
            sample.gt_sem_seg = PixelData(data=torch.zeros(1, *image.shape[1:], dtype=torch.long))
            inputs.append([view.to(torch.uint8)])
            samples.append([sample])
    return dict(inputs=inputs, data_samples=samples)


def test_tta_predictions_equal_mmseg_seg_tta_model(segmentors):
    reference, ours = segmentors
    ours.test_cfg.window_batch_size = 8
    image = torch.randint(0, 256, (3, 70, 100), dtype=torch.uint8)
    batch = tta_batch(image, [(64, 91), (96, 137)])
    with torch.no_grad():
        expected = SegTTAModel(module=reference).test_step(copy.deepcopy(batch))
        actual = BatchedSlideSegTTAModel(module=ours).test_step(copy.deepcopy(batch))
    assert len(actual) == len(expected) == 1
    assert torch.equal(actual[0].pred_sem_seg.data, expected[0].pred_sem_seg.data)
    assert actual[0].pred_sem_seg.data.shape == (1, 70, 100)
    assert len(actual[0].pred_sem_seg.data.unique()) > 1
