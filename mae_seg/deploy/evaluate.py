"""The config's test set scored through onnxruntime: what ``tools/deployment/deploy_test.py``
calls, so that an exported model is shown to score what the PyTorch one scores.

Data loading, post-processing (``EncoderDecoder.postprocess_result``: padding and flips
undone, logits resized to the original image, argmax) and the metric (the config's
``test_evaluator``, mmseg's ``IoUMetric``) are mmseg's own; only the network runs in
onnxruntime, on whole images or sliding windows around the session.
"""

from __future__ import annotations

import numpy as np
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmseg.registry import MODELS

from ..errors import ConfigError
from ..runner.checks import check_datasets
from ..runner.config import is_tta_model
from .runtime import OnnxSegmentor

__all__ = ['evaluate_onnx']


def evaluate_onnx(
    cfg: Config,
    session: OnnxSegmentor,
    mode: str | None = None,
    window_batch_size: int = 1,
) -> dict[str, float]:
    """Score ``session`` on ``cfg.test_dataloader`` with ``cfg.test_evaluator``.

    Args:
        cfg: the config the model was trained and exported with.
        session: the exported model.
        mode: ``'whole'`` or ``'slide'`` (default: ``cfg.model.test_cfg.mode``); slide takes
            ``crop_size`` and ``stride`` from ``cfg.model.test_cfg``.
        window_batch_size: sliding windows a session run (1 for a file exported without
            ``--dynamic``).

    Returns:
        the evaluator's metrics, e.g. ``{'aAcc': ..., 'mIoU': ..., 'mAcc': ...}`` (percent);
        mmseg's IoU table is printed on the way.

    Raises:
        ConfigError: a TTA config, a mode without crop settings, missing data, or a model
            whose class count differs from the config's.
    """
    if is_tta_model(cfg.model):
        raise ConfigError(
            f'the config tests with test-time augmentation ({cfg.model.type}); give the '
            'single-scale config it is derived from'
        )
    test_cfg = cfg.model.get('test_cfg', {}) or {}
    mode = mode or test_cfg.get('mode', 'whole')
    if mode == 'slide' and not ('crop_size' in test_cfg and 'stride' in test_cfg):
        raise ConfigError('slide inference needs model.test_cfg.crop_size and stride')
    check_datasets(cfg, ('test_dataloader',))
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    loader = Runner.build_dataloader(cfg.test_dataloader)
    evaluator = Evaluator(cfg.test_evaluator)
    evaluator.dataset_meta = loader.dataset.metainfo
    # mmseg's post-processing is a method of the segmentor; it reads only the head settings.
    segmentor = MODELS.build(cfg.model).eval()
    for data in loader:
        samples = data['data_samples']
        for image, sample in zip(data['inputs'], samples):
            rgb = _rgb_batch(image)
            if mode == 'slide':
                logits = session.slide(
                    rgb, test_cfg['crop_size'], test_cfg['stride'], window_batch_size
                )
            else:
                logits = session(rgb)
            if logits.shape[1] != segmentor.out_channels:
                raise ConfigError(
                    f'the ONNX model gives {logits.shape[1]} classes, the config '
                    f'{segmentor.out_channels}: export it from this config'
                )
            segmentor.postprocess_result(torch.from_numpy(logits), [sample])
        evaluator.process(data_samples=samples, data_batch=data)
    return evaluator.evaluate(len(loader.dataset))


def _rgb_batch(image: torch.Tensor) -> np.ndarray:
    """A loaded ``(3, H, W)`` image (BGR, as mmcv's ``LoadImageFromFile`` reads it) as the
    exported graph takes it: ``(1, 3, H, W)`` float32 RGB."""
    return image.flip(0).float().numpy()[None]
