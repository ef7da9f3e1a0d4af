from .samplers import PositionSeededDataset, ResumableInfiniteSampler
from .transforms import MinSizeResize

__all__ = ['MinSizeResize', 'PositionSeededDataset', 'ResumableInfiniteSampler']
