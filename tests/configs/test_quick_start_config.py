"""The quick-start config: tiny, CPU-ready, and robust to images smaller than its crop."""

from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / 'configs/quick_start/mae-tiny_upernet_2xb4-400_shapes-128x128.py'


@pytest.fixture(scope='module')
def cfg():
    return Config.fromfile(str(QUICK))


@pytest.fixture
def model(cfg):
    init_default_scope('mmseg')
    model_cfg = cfg.model.copy()
    model_cfg.pretrained = None
    model = revert_sync_batchnorm(MODELS.build(model_cfg))
    model.init_weights()
    return model


def test_is_the_base_recipe_shrunk(cfg):
    backbone = cfg.model.backbone
    assert backbone.type == 'MAEViT'
    assert (backbone.embed_dims, backbone.num_layers, backbone.img_size) == (128, 4, (128, 128))
    assert cfg.model.decode_head.num_classes == len(cfg.metainfo.classes) == 5
    assert cfg.model.test_cfg.mode == 'slide'
    assert cfg.optim_wrapper.type == 'OptimWrapper'  # fp32 on the CPU
    assert cfg.optim_wrapper.paramwise_cfg == dict(layer_decay_rate=0.65)  # depth from the model
    assert cfg.param_scheduler[-1].end == cfg.train_cfg.max_iters
    assert cfg.tta_pipeline[1].transforms[0][0].type == 'MinSizeResize'


def _sample(height, width, num_classes=5):
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, height, width)))
    sample.set_metainfo(dict(ori_shape=(height, width), img_shape=(height, width)))
    return sample


def test_training_pads_images_smaller_than_the_crop(model):
    batch = dict(
        inputs=[torch.randint(0, 255, (3, 60, 90), dtype=torch.uint8) for _ in range(2)],
        data_samples=[_sample(60, 90), _sample(60, 90)],
    )
    data = model.data_preprocessor(batch, training=True)
    assert data['inputs'].shape == (2, 3, 128, 128)
    padded = data['data_samples'][0].gt_sem_seg.data
    assert padded.shape == (1, 128, 128) and (padded[:, 60:] == 255).all()
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(value for name, value in losses.items() if 'loss' in name)
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.patch_embed.projection.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('shape', [(51, 512), (60, 90), (128, 300)])
def test_sliding_window_test_on_images_smaller_than_the_crop(model, shape):
    model.eval()
    batch = dict(
        inputs=[torch.randint(0, 255, (3, *shape), dtype=torch.uint8)],
        data_samples=[_sample(*shape)],
    )
    with torch.no_grad():
        (prediction,) = model.test_step(batch)
    assert prediction.pred_sem_seg.data.shape == (1, *shape)
    assert prediction.seg_logits.data.shape == (5, *shape)
