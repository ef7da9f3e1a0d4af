"""A tiny trained-looking segmentor from the quick-start config, and images to segment."""

import cv2
import numpy as np
import pytest
import torch

CLASSES = ('wall', 'building', 'sky', 'floor', 'tree')
PALETTE = [[120, 120, 120], [180, 120, 120], [6, 230, 230], [80, 50, 50], [4, 200, 3]]


@pytest.fixture(scope='session')
def tiny_model(tmp_path_factory, tiny_quick_start):
    """``(config, checkpoint)``: the quick-start model at 64 dims and 64x64, random weights,
    saved as mmengine saves a trained segmentor (``meta.dataset_meta`` and ``state_dict``)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    tmp = tmp_path_factory.mktemp('tiny_model')
    config = tiny_quick_start
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(config)).model)
    model.init_weights()
    with torch.no_grad():
        for param in model.decode_head.conv_seg.parameters():
            param.add_(torch.randn_like(param))
    checkpoint = tmp / 'iter_400.pth'
    meta = dict(dataset_meta=dict(classes=CLASSES, palette=PALETTE))
    torch.save(dict(meta=meta, state_dict=model.state_dict()), checkpoint)
    return config, checkpoint


@pytest.fixture(scope='session')
def images(tmp_path_factory):
    """Three JPEG images: two in ``a/``, one in ``b/``, 64 x 90 to 70 x 100 pixels."""
    tmp = tmp_path_factory.mktemp('images')
    rng = np.random.default_rng(0)
    paths = []
    for relative, (height, width) in [('a/x.jpg', (64, 90)), ('a/y.jpg', (70, 100)),
                                      ('b/x.jpg', (64, 64))]:  # fmt: skip
        path = tmp / relative
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        paths.append(path)
    return paths
