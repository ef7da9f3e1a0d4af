"""Training machinery in mmseg's layout: :mod:`.optimizers` (layer-wise lr decay),
:mod:`.hooks`, the exactly resumable train loop (:mod:`.resume`) and DDP on the CPU."""

from .cpu_ddp import CPUDistributedDataParallel
from .hooks import AtomicCheckpointHook, NonFiniteLossHook, TestSegVisualizationHook
from .optimizers import MAELayerDecayOptimizerConstructor
from .resume import ExactResumeHook, ExactResumeIterBasedTrainLoop

__all__ = [
    'AtomicCheckpointHook',
    'CPUDistributedDataParallel',
    'ExactResumeHook',
    'ExactResumeIterBasedTrainLoop',
    'MAELayerDecayOptimizerConstructor',
    'NonFiniteLossHook',
    'TestSegVisualizationHook',
]
