from .backbones import MAEViT

__all__ = ['MAEViT']
