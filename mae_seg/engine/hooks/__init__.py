from .atomic_checkpoint import AtomicCheckpointHook
from .finite_loss import NonFiniteLossHook
from .visualization_hook import TestSegVisualizationHook

__all__ = ['AtomicCheckpointHook', 'NonFiniteLossHook', 'TestSegVisualizationHook']
