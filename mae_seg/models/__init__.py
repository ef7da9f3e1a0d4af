from .backbones import MAEViT
from .segmentors import BatchedSlideEncoderDecoder, BatchedSlideSegTTAModel

__all__ = ['BatchedSlideEncoderDecoder', 'BatchedSlideSegTTAModel', 'MAEViT']
