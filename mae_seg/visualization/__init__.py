from .curves import plot_training_curves, read_scalars

__all__ = ['plot_training_curves', 'read_scalars']
