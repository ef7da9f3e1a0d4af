"""mae_seg: MAE-pretrained Vision Transformers for semantic segmentation in MMSegmentation.

Importing the package registers its classes in mmseg's registries and does nothing else;
configs pull it in with ``custom_imports = dict(imports=['mae_seg'], allow_failed_imports=False)``.
Our tools then call :func:`mae_seg.compat.setup_openmmlab` (Python users: once, before
building mmengine's ``Runner``), which makes current torch and setuptools read what
mmengine 0.10 writes and reads, and quiets the output no user can act on.
"""

from .datasets import MinSizeResize, PositionSeededDataset, ResumableInfiniteSampler
from .engine import (
    AtomicCheckpointHook,
    CPUDistributedDataParallel,
    ExactResumeHook,
    ExactResumeIterBasedTrainLoop,
    MAELayerDecayOptimizerConstructor,
    NonFiniteLossHook,
    TestSegVisualizationHook,
)
from .models import BatchedSlideEncoderDecoder, BatchedSlideSegTTAModel, MAEViT
from .version import __version__

__all__ = [
    'AtomicCheckpointHook',
    'BatchedSlideEncoderDecoder',
    'BatchedSlideSegTTAModel',
    'CPUDistributedDataParallel',
    'ExactResumeHook',
    'ExactResumeIterBasedTrainLoop',
    'MAELayerDecayOptimizerConstructor',
    'MAEViT',
    'MinSizeResize',
    'NonFiniteLossHook',
    'PositionSeededDataset',
    'ResumableInfiniteSampler',
    'TestSegVisualizationHook',
    '__version__',
]
