from .mae_vit import MAEViT

__all__ = ['MAEViT']
