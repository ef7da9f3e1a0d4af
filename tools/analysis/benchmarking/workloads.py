"""The models compared and their inputs: a bare backbone, or a full UPerNet segmentor.

Both variants of a workload get the same weights: the reference is initialised from a
seed (or, for a segmentor, loaded from a trained checkpoint), and MAEViT loads its state
dict (the keys are the same).
"""

from __future__ import annotations

import copy
import logging
import os.path as osp
from dataclasses import dataclass, field

import mmcv
import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.models.backbones import MAE
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import nn

from mae_seg.errors import CheckpointError
from mae_seg.io import extract_state_dict, load_checkpoint_file
from mae_seg.models import MAEViT

from .cases import BenchmarkError

__all__ = [
    'ARCHS',
    'BackboneWorkload',
    'SegmentorWorkload',
    'WorkloadSpec',
    'build_workload',
]

# The ViT settings of mmseg's MAE configs (ViT-B) and of the published ViT-L recipe.
ARCHS = {
    'vit-b': dict(
        embed_dims=768, num_layers=12, num_heads=12, out_indices=[3, 5, 7, 11], drop_path_rate=0.1
    ),
    'vit-l': dict(
        embed_dims=1024,
        num_layers=24,
        num_heads=16,
        out_indices=[7, 11, 15, 23],
        drop_path_rate=0.2,
    ),
}


@dataclass(frozen=True)
class WorkloadSpec:
    """Everything needed to rebuild a workload, in the benchmark or in a child process.

    Args:
        mode: ``'backbone'`` or ``'segmentor'``.
        arch: backbone settings (``embed_dims``, ``num_layers``, ...), e.g. ``ARCHS['vit-b']``;
            in segmentor mode, changes to the config's backbone (``None``: as configured).
        image_size: ``(H, W)`` of the images, also the backbone's ``img_size``.
        device: ``'cpu'`` or ``'cuda'``.
        config: segmentor config file (segmentor mode).
        seed: seed of the weights and inputs.
        input_size: ``(H, W)`` of the backbone's input images where they are not of
            ``image_size`` (whole-image inference at another size; backbone mode).
    """

    mode: str
    arch: dict | None = field(default=None, hash=False)
    image_size: tuple[int, int] = (512, 512)
    device: str = 'cpu'
    config: str | None = None
    seed: int = 0
    input_size: tuple[int, int] | None = None


def _seeded_weights_(model: nn.Module, seed: int) -> None:
    """The model's own initialisation, then non-zero relative position tables."""
    torch.manual_seed(seed)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights logs every parameter at INFO
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith('relative_position_bias_table'):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)


def _random_images(batch: int, size: tuple[int, int], seed: int, device: str) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed + batch)
    return torch.randn(batch, 3, *size, generator=generator).to(device)


class BackboneWorkload:
    """mmseg's ``MAE`` against ``MAEViT``; the loss is the mean square of the outputs."""

    def __init__(self, spec: WorkloadSpec) -> None:
        self.spec = spec

    def build(self, variant: str) -> nn.Module:
        """An untrained model of ``variant`` (``'mmseg'``, ``'ours'`` or ``'ours_cp'``)."""
        kwargs = dict(
            img_size=self.spec.image_size,
            patch_size=16,
            mlp_ratio=4,
            norm_cfg=dict(type='LN', eps=1e-6),
            **(self.spec.arch or ARCHS['vit-b']),
        )
        if variant == 'mmseg':
            return MAE(**kwargs).to(self.spec.device)
        return MAEViT(with_cp=variant == 'ours_cp', **kwargs).to(self.spec.device)

    def backbone(self, model: nn.Module) -> nn.Module:
        return model

    def inputs(self, batch: int) -> torch.Tensor:
        size = self.spec.input_size or self.spec.image_size
        return _random_images(batch, size, self.spec.seed, self.spec.device)

    def infer(self, model: nn.Module, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return model(inputs)

    def loss(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        return sum(out.float().square().mean() for out in model(inputs))


class SegmentorWorkload:
    """UPerNet segmentors from a config, with mmseg's ``MAE`` or ``MAEViT`` as backbone.

    Synchronized batch norm becomes plain batch norm (one process); the test mode is
    ``'whole'`` unless changed with :meth:`set_test_mode`, whose sliding windows are the
    config's (``test_cfg.crop_size`` and ``stride``; 512 and 341 if it has none).
    """

    def __init__(self, spec: WorkloadSpec) -> None:
        if spec.config is None:
            raise BenchmarkError('segmentor mode needs a config: pass --config')
        self.spec = spec
        self.model_cfg, self.preprocess_cfg = self._load_model_cfg(spec.config)
        test_cfg = self.model_cfg.get('test_cfg') or {}
        self.slide_crop = tuple(test_cfg.get('crop_size', (512, 512)))
        self.slide_stride = tuple(test_cfg.get('stride', (341, 341)))

    @staticmethod
    def _load_model_cfg(path: str) -> tuple[dict, dict]:
        """The model settings, and its data preprocessor's (mean, std, channel order)."""
        if not osp.isfile(path):
            raise BenchmarkError(f'config {path} does not exist: pass an existing --config')
        model_cfg = Config.fromfile(path).model
        model_cfg.pop('pretrained', None)
        preprocess_cfg = model_cfg.pop('data_preprocessor', None) or {}
        return model_cfg.to_dict(), dict(preprocess_cfg)

    def build(self, variant: str) -> nn.Module:
        """An untrained segmentor whose backbone is ``variant``."""
        init_default_scope('mmseg')
        cfg = copy.deepcopy(self.model_cfg)
        backbone = cfg['backbone']
        backbone.update(self.spec.arch or {}, img_size=self.spec.image_size)
        backbone.pop('with_cp', None)
        backbone.pop('init_cfg', None)
        if variant == 'mmseg':
            backbone['type'] = 'MAE'
        else:
            backbone.update(type='MAEViT', with_cp=variant == 'ours_cp')
        model = revert_sync_batchnorm(MODELS.build(cfg))
        self.set_test_mode(model, 'whole')
        return model.to(self.spec.device)

    def backbone(self, model: nn.Module) -> nn.Module:
        return model.backbone

    def set_test_mode(self, model: nn.Module, mode: str) -> None:
        """``test_cfg`` of mmseg: ``'whole'`` image, or ``'slide'`` windows."""
        if mode == 'slide':
            model.test_cfg = ConfigDict(
                mode='slide', crop_size=self.slide_crop, stride=self.slide_stride
            )
        else:
            model.test_cfg = ConfigDict(mode='whole')

    def inputs(self, batch: int, size: tuple[int, int] | None = None) -> tuple:
        """Images, image metas and data samples with random labels."""
        size = tuple(size or self.spec.image_size)
        images = _random_images(batch, size, self.spec.seed, self.spec.device)
        generator = torch.Generator().manual_seed(self.spec.seed)
        num_classes = self.model_cfg['decode_head']['num_classes']
        metas = [dict(img_shape=size, ori_shape=size, pad_shape=size) for _ in range(batch)]
        samples = []
        for meta in metas:
            labels = torch.randint(num_classes, (1, *size), generator=generator)
            sample = SegDataSample(metainfo=meta)
            sample.gt_sem_seg = PixelData(data=labels.to(self.spec.device))
            samples.append(sample)
        return images, metas, samples

    def image_inputs(self, path: str, size: tuple[int, int]) -> tuple:
        """An image file resized to ``size`` ``(H, W)`` and normalised by the config's data
        preprocessor, with its meta; as :meth:`inputs` without data samples.

        Raises:
            BenchmarkError: the file is not a readable image.
        """
        if not osp.isfile(path):
            raise BenchmarkError(f'image {path} does not exist')
        image = mmcv.imread(path)  # BGR, as mmseg's LoadImageFromFile
        if image is None:
            raise BenchmarkError(f'image {path} cannot be read as an image')
        image = mmcv.imresize(image, (size[1], size[0]), interpolation='bilinear')
        init_default_scope('mmseg')
        preprocessor = MODELS.build({'type': 'SegDataPreProcessor', **self.preprocess_cfg})
        pixels = torch.from_numpy(image.transpose(2, 0, 1).copy())
        images = preprocessor(dict(inputs=[pixels]), training=False)['inputs']
        size = tuple(size)
        metas = [dict(img_shape=size, ori_shape=size, pad_shape=size)]
        return images.to(self.spec.device), metas, None

    def load_weights(self, models: dict[str, nn.Module], path: str) -> None:
        """Load a trained segmentor checkpoint (mmseg / mae_seg layout) into every model.

        MAEViT reads it first (it accepts mmseg's ``relative_position_index`` buffers and
        needs none); mmseg's ``MAE`` then gets MAEViT's weights and keeps its own index.

        Raises:
            BenchmarkError: the file cannot be read safely, or its keys or shapes are not
                those of the config's segmentor.
        """
        try:
            state_dict = extract_state_dict(load_checkpoint_file(path))
        except (OSError, CheckpointError) as error:
            raise BenchmarkError(str(error)) from None
        ours, reference = models['ours'], models['mmseg']
        try:
            ours.load_state_dict(state_dict, strict=True)
        except RuntimeError as error:
            raise BenchmarkError(
                f"checkpoint {path} does not fit the config's segmentor: "
                + ' '.join(str(error).split())[:400]
            ) from None
        merged = reference.state_dict()
        merged.update(ours.state_dict())
        reference.load_state_dict(merged, strict=True)

    def infer(self, model: nn.Module, inputs: tuple) -> torch.Tensor:
        images, metas, _ = inputs
        return model.inference(images, copy.deepcopy(metas))

    def loss(self, model: nn.Module, inputs: tuple) -> torch.Tensor:
        images, _, samples = inputs
        losses = model.loss(images, samples)
        return sum(value for key, value in losses.items() if 'loss' in key)


def build_workload(spec: WorkloadSpec) -> BackboneWorkload | SegmentorWorkload:
    """The workload of ``spec.mode``."""
    if spec.mode == 'backbone':
        return BackboneWorkload(spec)
    if spec.mode == 'segmentor':
        return SegmentorWorkload(spec)
    raise BenchmarkError(f'mode {spec.mode!r}: use backbone or segmentor')


def build_pair(workload, variants: list[str]) -> dict[str, nn.Module]:
    """One model per distinct architecture among ``variants``, all with the same weights.

    ``'ours'`` and ``'ours_cp'`` share one MAEViT (``with_cp`` is switched per step).
    """
    reference = workload.build('mmseg')
    _seeded_weights_(reference, workload.spec.seed)
    models = {'mmseg': reference}
    if any(v.startswith('ours') for v in variants):
        ours = workload.build('ours')
        ours.load_state_dict(reference.state_dict(), strict=True)
        models['ours'] = ours
    return models
