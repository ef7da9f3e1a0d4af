from .attention import RelPosAttention
from .positions import (
    relative_position_index,
    resize_abs_pos_embed,
    resize_rel_pos_bias_table,
)

__all__ = [
    'RelPosAttention',
    'relative_position_index',
    'resize_abs_pos_embed',
    'resize_rel_pos_bias_table',
]
