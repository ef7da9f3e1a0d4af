"""The ADE20K configs: the published recipe, the min-size multi-scale test, mmseg's weights."""

from pathlib import Path

import cv2
import mmseg
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS

from mae_seg.runner import setup_test_config
from mae_seg.runner.weights import build_meta_model, meta_build

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / 'configs' / 'mae'
BASE = CONFIGS / 'mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py'
MS = CONFIGS / 'mae-base_upernet_8xb2-amp-160k_ade20k-512x512-ms.py'
LARGE = CONFIGS / 'mae-large_upernet_8xb2-amp-160k_ade20k-512x512.py'
MMSEG_MAE_CONFIG = Path(mmseg.__file__).parent / '.mim/configs/mae' / BASE.name


@pytest.fixture(scope='module')
def base():
    return Config.fromfile(str(BASE))


def test_base_is_the_published_recipe(base):
    backbone = base.model.backbone
    assert backbone.type == 'MAEViT'
    assert (backbone.img_size, backbone.patch_size) == ((512, 512), 16)
    assert (backbone.embed_dims, backbone.num_layers, backbone.num_heads) == (768, 12, 12)
    assert backbone.drop_path_rate == 0.1 and backbone.init_values == 1.0
    assert backbone.out_indices == [3, 5, 7, 11]
    assert base.model.neck.type == 'Feature2Pyramid'
    assert base.model.neck.rescales == [4, 2, 1, 0.5]
    head, aux = base.model.decode_head, base.model.auxiliary_head
    assert (head.type, head.channels, head.num_classes) == ('UPerHead', 768, 150)
    assert head.in_channels == [768] * 4
    assert (aux.type, aux.in_channels, aux.num_classes) == ('FCNHead', 768, 150)
    assert base.model.type == 'BatchedSlideEncoderDecoder'
    assert base.model.test_cfg == dict(
        mode='slide', crop_size=(512, 512), stride=(341, 341), window_batch_size=8
    )
    assert base.model.pretrained == 'pretrain/mae_pretrain_vit_base_mmseg.pth'
    assert base.custom_imports == dict(imports=['mae_seg'], allow_failed_imports=False)
    assert base.default_scope == 'mmseg'


def test_base_trains_in_real_mixed_precision(base):
    wrapper = base.optim_wrapper
    assert wrapper.type == 'AmpOptimWrapper' and wrapper.loss_scale == 'dynamic'
    assert wrapper.optimizer == dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05)
    assert wrapper.constructor == 'MAELayerDecayOptimizerConstructor'
    # The depth is read from the model (model.backbone.num_layers, 12): said once.
    assert wrapper.paramwise_cfg == dict(layer_decay_rate=0.65)
    assert 'fp16' not in base  # the 0.x key mmengine ignores
    warmup, poly = base.param_scheduler
    assert (warmup.type, warmup.start_factor) == ('LinearLR', 1e-6)
    assert (warmup.begin, warmup.end) == (0, 1500)
    assert (poly.type, poly.power, poly.begin, poly.end) == ('PolyLR', 1.0, 1500, 160000)
    assert base.train_cfg.max_iters == 160000
    assert base.train_dataloader.batch_size == 2


def test_large_follows_the_vit_large_recipe():
    large = Config.fromfile(str(LARGE))
    backbone = large.model.backbone
    assert (backbone.embed_dims, backbone.num_layers, backbone.num_heads) == (1024, 24, 16)
    assert backbone.out_indices == [7, 11, 15, 23]
    assert backbone.drop_path_rate == 0.2 and backbone.with_cp is True
    assert large.model.neck.embed_dim == 1024
    assert large.model.decode_head.channels == 1024
    assert large.model.decode_head.in_channels == [1024] * 4
    assert large.model.auxiliary_head.in_channels == 1024
    assert large.optim_wrapper.type == 'AmpOptimWrapper'
    assert large.optim_wrapper.paramwise_cfg == dict(layer_decay_rate=0.75)
    assert 'FINETUNE.md' in LARGE.read_text()  # the recipe's source is named


@pytest.mark.parametrize(('config', 'depth'), [(BASE, 12), (LARGE, 24)], ids=['base', 'large'])
def test_lr_groups_are_those_of_the_depth_said_twice(config, depth):
    """Without paramwise_cfg.num_layers, the same groups as with it (models on meta)."""
    cfg = Config.fromfile(str(config))
    model = build_meta_model(cfg)
    wrapper_cfg = dict(cfg.optim_wrapper, type='OptimWrapper')  # AMP needs a GPU to build
    wrapper_cfg.pop('loss_scale')
    said_twice = dict(
        wrapper_cfg, paramwise_cfg=dict(wrapper_cfg['paramwise_cfg'], num_layers=depth)
    )
    groups = []
    for optim_cfg in (wrapper_cfg, said_twice):
        with meta_build():
            optimizer = build_optim_wrapper(model, optim_cfg).optimizer
        groups.append(
            [
                {**group, 'params': [id(p) for p in group['params']]}
                for group in optimizer.param_groups
            ]
        )
    assert groups[0] == groups[1]
    assert len(groups[0]) == 2 * (depth + 2)
    assert groups[0][0]['lr_scale'] == pytest.approx(
        wrapper_cfg['paramwise_cfg']['layer_decay_rate'] ** (depth + 1)
    )


def _ade_like_sample(tmp_path, height=512, width=683):
    image_path, label_path = tmp_path / 'image.jpg', tmp_path / 'label.png'
    rng = np.random.default_rng(0)
    cv2.imwrite(str(image_path), rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    cv2.imwrite(str(label_path), rng.integers(0, 151, (height, width), dtype=np.uint8))
    return dict(
        img_path=str(image_path),
        seg_map_path=str(label_path),
        reduce_zero_label=True,
        seg_fields=[],
        label_map=None,
    )


def test_ms_pipeline_keeps_every_short_side_at_512(tmp_path):
    ms = Config.fromfile(str(MS))
    init_default_scope('mmseg')
    pipeline = Compose(ms.test_dataloader.dataset.pipeline)
    out = pipeline(_ade_like_sample(tmp_path))
    shapes = [tuple(inputs.shape[1:]) for inputs in out['inputs']]
    assert len(shapes) == 12
    assert all(min(shape) >= 512 for shape in shapes)
    # ratios 0.5, 0.75 and 1.0 all give 512 x 683; 1.25, 1.5 and 1.75 grow it.
    assert sorted(set(shapes)) == [(512, 683), (640, 854), (768, 1025), (896, 1195)]
    flips = [sample.flip for sample in out['data_samples']]
    assert flips.count(True) == 6 and flips.count(False) == 6


def test_ms_config_is_the_base_model_under_seg_tta(base):
    ms = Config.fromfile(str(MS))
    assert ms.model.type == 'BatchedSlideSegTTAModel'
    assert ms.model.module == base.model
    assert ms.test_dataloader.dataset.pipeline == base.tta_pipeline


def test_tta_flag_on_base_equals_the_ms_config(base):
    ms = Config.fromfile(str(MS))
    tested = setup_test_config(Config.fromfile(str(BASE)), str(BASE), 'model.pth', tta=True)
    assert tested.model.type == ms.model.type == 'BatchedSlideSegTTAModel'
    assert tested.model.module == ms.model.module
    assert tested.test_dataloader.dataset.pipeline == ms.test_dataloader.dataset.pipeline


@pytest.mark.slow
@pytest.mark.parametrize('config', [BASE, MS], ids=['single-scale', 'ms'])
def test_accepts_the_weights_of_mmseg_own_mae_config(config, tmp_path):
    """mmseg's released checkpoint comes from mmseg's config: saved, it loads into ours as is."""
    init_default_scope('mmseg')
    theirs = Config.fromfile(str(MMSEG_MAE_CONFIG))
    theirs.model.pretrained = None
    reference = MODELS.build(theirs.model)
    assert type(reference.backbone).__name__ == 'MAE'
    state = reference.state_dict()
    torch.save({'meta': dict(iter=160000), 'state_dict': state}, tmp_path / 'released.pth')
    del reference

    ours_cfg = Config.fromfile(str(config))
    model_cfg = ours_cfg.model.get('module', ours_cfg.model)
    model_cfg.pretrained = None
    ours = MODELS.build(model_cfg)
    assert type(ours.backbone).__name__ == 'MAEViT'
    # mmseg stores each layer's relative_position_index buffer; MAEViT derives it from the grid.
    extra = set(state) - set(ours.state_dict())
    assert extra and all(name.endswith('attn.relative_position_index') for name in extra)
    assert set(ours.state_dict()) <= set(state)
    load_checkpoint(ours, str(tmp_path / 'released.pth'), strict=True)  # as load_from does
    for name, tensor in ours.state_dict().items():
        assert torch.equal(tensor, state[name]), name
