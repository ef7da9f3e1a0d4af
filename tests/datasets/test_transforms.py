"""MinSizeResize: keep-ratio resizing whose short side never drops below min_size."""

import numpy as np
import pytest
from mmseg.registry import TRANSFORMS

from mae_seg.datasets import MinSizeResize
from mae_seg.datasets.transforms import min_size_scale_factor


@pytest.mark.parametrize(
    ('image_hw', 'target_wh', 'expected'),
    [
        ((512, 683), (1024, 256), 1.0),  # 0.5x of (2048, 512): 256 < 512, raised
        ((512, 683), (2048, 512), 1.0),  # 1.0x: already 512
        ((512, 683), (3072, 768), 1.5),  # 1.5x: short side 768
        ((683, 512), (3584, 896), 1.75),  # portrait: the short side is the width
        ((400, 1000), (2048, 1024), 2.048),  # the long side limits the factor
    ],
)
def test_scale_factor(image_hw, target_wh, expected):
    assert min_size_scale_factor(image_hw, target_wh, 512) == pytest.approx(expected)


def test_min_size_wins_over_the_long_side_limit():
    # 100x1000 fitted into (1024, 256) would be 102x1024; the short side must reach 128.
    assert min_size_scale_factor((100, 1000), (1024, 256), 128) == pytest.approx(1.28)


def _results(height, width):
    rng = np.random.default_rng(0)
    return dict(
        img=rng.integers(0, 255, (height, width, 3), dtype=np.uint8),
        gt_seg_map=rng.integers(0, 150, (height, width), dtype=np.uint8),
        seg_fields=['gt_seg_map'],
        img_shape=(height, width),
    )


@pytest.mark.parametrize(
    ('ratio', 'expected_hw'),
    [(0.5, (512, 683)), (0.75, (512, 683)), (1.0, (512, 683)), (1.25, (640, 854))],
)
def test_image_and_map_resized_alike(ratio, expected_hw):
    transform = TRANSFORMS.build(
        dict(type='MinSizeResize', scale=(int(2048 * ratio), int(512 * ratio)), min_size=512)
    )
    assert isinstance(transform, MinSizeResize)
    out = transform(_results(512, 683))
    assert out['img'].shape[:2] == expected_hw
    assert out['gt_seg_map'].shape == expected_hw
    assert out['img_shape'] == expected_hw
    assert out['keep_ratio'] is True


def test_upscales_small_images_given_a_scale_factor():
    transform = MinSizeResize(min_size=128, scale_factor=0.5)
    out = transform(_results(100, 150))
    assert out['img'].shape[:2] == (128, 192)
    assert out['scale_factor'] == pytest.approx((1.28, 1.28))


def test_rejects_settings_that_cannot_hold():
    with pytest.raises(ValueError, match='keep_ratio'):
        MinSizeResize(min_size=512, scale=(2048, 512), keep_ratio=False)
    with pytest.raises(ValueError, match='min_size'):
        MinSizeResize(min_size=0, scale=(2048, 512))
