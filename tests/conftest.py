import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from mae_seg.compat import setup_openmmlab

# What our tools do first thing, and the one call documented for Python users.
setup_openmmlab()


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped where torch sees no GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='needs a CUDA GPU')
    for item in items:
        if 'cuda' in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def mm_log():
    """Messages sent to mmengine's current logger (``print_log(logger='current')``)."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    handler = _Collect()
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


# -- tiny MAE checkpoints in the layouts the converter reads ---------------------------------

TINY_VIT = dict(img_size=64, patch_size=16, embed_dim=96, depth=2, num_heads=3, num_classes=0)


def _randomize_(module):
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in module.named_parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
            if 'norm' in name and name.endswith('weight'):
                param.add_(1.0)
            if '.ls' in name:
                param.add_(0.5)
    return module


@pytest.fixture
def make_timm_vit():
    """Factory of randomised timm ViTs, by default 2 layers, 96 dims, 3 heads, 64x64 images."""
    from timm.models.vision_transformer import VisionTransformer

    def make(**kwargs):
        return _randomize_(VisionTransformer(**{**TINY_VIT, **kwargs})).eval()

    return make


def _mae_decoder_tensors(dims=64, depth=1, encoder_dims=96):
    tensors = {
        'mask_token': torch.zeros(1, 1, dims),
        'decoder_pos_embed': torch.zeros(1, 17, dims),
        'decoder_embed.weight': torch.randn(dims, encoder_dims),
        'decoder_embed.bias': torch.zeros(dims),
        'decoder_norm.weight': torch.ones(dims),
        'decoder_norm.bias': torch.zeros(dims),
        'decoder_pred.weight': torch.randn(16 * 16 * 3, dims),
        'decoder_pred.bias': torch.zeros(16 * 16 * 3),
    }
    for i in range(depth):
        tensors[f'decoder_blocks.{i}.norm1.weight'] = torch.ones(dims)
        tensors[f'decoder_blocks.{i}.attn.qkv.weight'] = torch.randn(3 * dims, dims)
        tensors[f'decoder_blocks.{i}.mlp.fc1.weight'] = torch.randn(4 * dims, dims)
    return tensors


def _timm_to_mmpretrain(timm_state):
    parts = {
        'norm1': 'ln1',
        'norm2': 'ln2',
        'attn.qkv': 'attn.qkv',
        'attn.proj': 'attn.proj',
        'mlp.fc1': 'ffn.layers.0.0',
        'mlp.fc2': 'ffn.layers.1',
        'ls1.gamma': 'attn.gamma1.weight',
        'ls2.gamma': 'ffn.gamma2.weight',
    }
    out = {}
    for key, value in timm_state.items():
        if key.startswith('blocks.'):
            _, index, rest = key.split('.', 2)
            for timm_part, mm_part in parts.items():
                if rest.startswith(timm_part):
                    key = f'layers.{index}.{mm_part}{rest[len(timm_part) :]}'
                    break
        elif key.startswith('patch_embed.proj.'):
            key = 'patch_embed.projection.' + key.split('.')[-1]
        elif key.startswith('norm.'):
            key = 'ln1.' + key.split('.')[-1]
        out[f'backbone.{key}'] = value
    return out


@pytest.fixture
def mae_decoder():
    """What the official MAE pretraining checkpoint holds beside the encoder (tiny)."""
    return _mae_decoder_tensors()


@pytest.fixture
def timm_to_mmpretrain():
    """timm ViT names -> mmpretrain MAE names, written out part by part (an independent oracle)."""
    return _timm_to_mmpretrain


@pytest.fixture
def official_checkpoint(tmp_path, make_timm_vit):
    """``(path, timm_vit)``: an official MAE pretraining file, ``{'model': encoder + decoder}``."""
    vit = make_timm_vit()
    path = tmp_path / 'mae_pretrain_tiny.pth'
    torch.save({'model': {**vit.state_dict(), **_mae_decoder_tensors()}}, path)
    return path, vit


@pytest.fixture
def mmpretrain_checkpoint(tmp_path, make_timm_vit):
    """``(path, timm_vit)``: an mmpretrain MAE pretraining file with neck and preprocessor."""
    vit = make_timm_vit()
    state = _timm_to_mmpretrain(vit.state_dict())
    state.update({f'neck.{k}': v for k, v in _mae_decoder_tensors().items()})
    state['data_preprocessor.mean'] = torch.zeros(3, 1, 1)
    path = tmp_path / 'mmpretrain_mae_tiny.pth'
    torch.save({'meta': {'epoch': 400}, 'state_dict': state}, path)
    return path, vit


# -- the quick-start model at 64 dims and 64x64, for machinery tests -------------------------

QUICK_START = (
    Path(__file__).resolve().parents[1]
    / 'configs/quick_start/mae-tiny_upernet_2xb4-400_shapes-128x128.py'
)
TINY_QUICK_START = """
_base_ = [{quick!r}]
crop_size = (64, 64)
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    backbone=dict(img_size=crop_size, embed_dims=64, drop_path_rate=0.0),
    neck=dict(embed_dim=64),
    decode_head=dict(in_channels=[64, 64, 64, 64], channels=16, dropout_ratio=0.0),
    auxiliary_head=dict(in_channels=64, channels=8, dropout_ratio=0.0),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(43, 43)),
)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 64), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
"""


@pytest.fixture(scope='session')
def tiny_quick_start(tmp_path_factory):
    """The path of a config: the quick-start model (4 layers) at 64 dims and 64x64 crops."""
    path = tmp_path_factory.mktemp('tiny_quick_start') / 'tiny_quick_start.py'
    path.write_text(TINY_QUICK_START.format(quick=str(QUICK_START)))
    return path
