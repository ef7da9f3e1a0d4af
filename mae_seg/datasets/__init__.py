from .transforms import MinSizeResize

__all__ = ['MinSizeResize']
