from .layer_decay import MAELayerDecayOptimizerConstructor

__all__ = ['MAELayerDecayOptimizerConstructor']
