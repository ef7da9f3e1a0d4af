"""mae_seg: MAE-pretrained Vision Transformers for semantic segmentation in MMSegmentation.

Importing the package registers its modules in mmseg's registries; configs pull it in with
``custom_imports = dict(imports=['mae_seg'], allow_failed_imports=False)``.
"""

from .compat import (
    allow_mmengine_checkpoints,
    quiet_known_warnings,
    resolve_scoped_configs,
    summarize_init_info,
)
from .datasets import MinSizeResize
from .engine import MAELayerDecayOptimizerConstructor
from .engine.visualization_hook import TestSegVisualizationHook
from .models import BatchedSlideEncoderDecoder, BatchedSlideSegTTAModel, MAEViT
from .version import __version__

allow_mmengine_checkpoints()
resolve_scoped_configs()
quiet_known_warnings()
summarize_init_info()

__all__ = [
    'BatchedSlideEncoderDecoder',
    'BatchedSlideSegTTAModel',
    'MAELayerDecayOptimizerConstructor',
    'MAEViT',
    'MinSizeResize',
    'TestSegVisualizationHook',
    '__version__',
]
