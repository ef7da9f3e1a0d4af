from .cpu_ddp import CPUDistributedDataParallel
from .layer_decay import MAELayerDecayOptimizerConstructor

__all__ = ['CPUDistributedDataParallel', 'MAELayerDecayOptimizerConstructor']
