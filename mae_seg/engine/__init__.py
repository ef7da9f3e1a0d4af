from .atomic_checkpoint import AtomicCheckpointHook
from .cpu_ddp import CPUDistributedDataParallel
from .finite_loss import NonFiniteLossError, NonFiniteLossHook
from .layer_decay import MAELayerDecayOptimizerConstructor
from .resumable_data import PositionSeededDataset, ResumableInfiniteSampler
from .resume import ExactResumeHook, ExactResumeIterBasedTrainLoop

__all__ = [
    'AtomicCheckpointHook',
    'CPUDistributedDataParallel',
    'ExactResumeHook',
    'ExactResumeIterBasedTrainLoop',
    'MAELayerDecayOptimizerConstructor',
    'NonFiniteLossError',
    'NonFiniteLossHook',
    'PositionSeededDataset',
    'ResumableInfiniteSampler',
]
