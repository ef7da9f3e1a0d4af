from .batched_slide import BatchedSlideEncoderDecoder, BatchedSlideSegTTAModel
from .sliding_windows import sliding_windows

__all__ = ['BatchedSlideEncoderDecoder', 'BatchedSlideSegTTAModel', 'sliding_windows']
