"""Position geometry against mmseg's BEiT index and simple invariants of the resizers."""

import pytest
import torch

from mae_seg.models.layers.positions import (
    rel_pos_grid_from_table_size,
    rel_pos_table_size,
    relative_position_index,
    resize_abs_pos_embed,
    resize_rel_pos_bias_table,
)


@pytest.mark.parametrize('grid', [(4, 4), (3, 5), (14, 14), (7, 2)])
def test_index_matches_mmseg_beit(grid):
    from mmseg.models.backbones.beit import BEiTAttention

    reference = BEiTAttention(embed_dims=8, num_heads=2, window_size=grid, bias=True)
    assert torch.equal(relative_position_index(grid), reference.relative_position_index)
    assert reference.relative_position_bias_table.shape[0] == rel_pos_table_size(grid)


def test_index_maps_equal_offsets_to_one_entry():
    index = relative_position_index((3, 4))
    # token (r, c) is 1 + r * 4 + c; offset (+1, +1) from (0, 0) and from (1, 2).
    assert index[1 + 0, 1 + 5] == index[1 + 6, 1 + 11]
    assert index[1 + 0, 1 + 5] != index[1 + 5, 1 + 0]


def test_grid_from_table_size_round_trip():
    assert rel_pos_grid_from_table_size(rel_pos_table_size((32, 32))) == (32, 32)
    with pytest.raises(ValueError, match='square token grid'):
        rel_pos_grid_from_table_size(rel_pos_table_size((3, 5)))


def test_rel_table_resize_keeps_cls_entries_centre_and_constants():
    table = torch.randn(rel_pos_table_size((4, 4)), 3)
    resized = resize_rel_pos_bias_table(table, (4, 4), (6, 9))
    assert resized.shape == (rel_pos_table_size((6, 9)), 3)
    torch.testing.assert_close(resized[-3:], table[-3:])
    # The zero offset stays at the centre of the (2H-1, 2W-1) map.
    centre_src = table[:-3].reshape(7, 7, 3)[3, 3]
    centre_dst = resized[:-3].reshape(11, 17, 3)[5, 8]
    torch.testing.assert_close(centre_dst, centre_src)
    constant = torch.full((rel_pos_table_size((4, 4)), 2), 0.25)
    torch.testing.assert_close(
        resize_rel_pos_bias_table(constant, (4, 4), (5, 3)),
        torch.full((rel_pos_table_size((5, 3)), 2), 0.25),
    )


def test_abs_resize_matches_mmseg_for_square_grids():
    from mmseg.models.backbones.mae import MAE

    pos_embed = torch.randn(1, 1 + 14 * 14, 8)
    model = MAE(img_size=256, embed_dims=8, num_layers=1, num_heads=2)
    expected = model.resize_abs_pos_embed({'pos_embed': pos_embed.clone()})['pos_embed']
    torch.testing.assert_close(resize_abs_pos_embed(pos_embed, (14, 14), (16, 16)), expected)


def test_abs_resize_identity_and_non_square():
    pos_embed = torch.randn(1, 1 + 6 * 4, 5)
    assert resize_abs_pos_embed(pos_embed, (6, 4), (6, 4)) is pos_embed
    resized = resize_abs_pos_embed(pos_embed, (6, 4), (3, 8))
    assert resized.shape == (1, 1 + 24, 5)
    torch.testing.assert_close(resized[:, :1], pos_embed[:, :1])
