"""Position geometry against mmseg's BEiT index and simple invariants of the resizers."""

import pytest
import torch

from mae_seg.models.layers.positions import (
    extend_abs_pos_embed,
    extend_rel_pos_bias_table,
    fit_abs_pos_embed,
    fit_rel_pos_bias_table,
    parse_position_fit,
    rel_pos_bias_grid_view,
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


@pytest.mark.parametrize('grid', [(1, 1), (4, 4), (3, 5), (7, 2)])
def test_grid_view_of_the_table_is_the_gathered_bias_with_keys_reversed(grid):
    index = relative_position_index(grid)[1:, 1:]
    table = torch.randn(3, rel_pos_table_size(grid))
    view = rel_pos_bias_grid_view(table, grid)
    tokens = grid[0] * grid[1]
    assert view.data_ptr() == table.data_ptr()  # a view, no copy
    expected = table[:, index].flip(-1)  # keys in reverse order
    assert torch.equal(view.reshape(3, tokens, tokens), expected)
    transposed = table.t().contiguous().t()  # same values, entries 3 apart in memory
    strided = rel_pos_bias_grid_view(transposed, grid)
    assert torch.equal(strided.reshape(3, tokens, tokens), expected)


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


def _offset_bias(table, grid):
    """``{(dy, dx): bias}`` of a table, read through the token-pair index (an independent
    route from the one the fitting functions take)."""
    index = relative_position_index(grid)
    height, width = grid
    biases = {}
    for q in range(height * width):
        for k in range(height * width):
            offset = (q // width - k // width, q % width - k % width)
            biases[offset] = table[index[1 + q, 1 + k]]
    return biases


@pytest.mark.parametrize(('src', 'dst'), [((3, 4), (5, 7)), ((4, 4), (2, 3)), ((3, 3), (3, 6))])
def test_extended_rel_table_keeps_learned_offsets_and_clamps_beyond(src, dst):
    table = torch.randn(rel_pos_table_size(src), 2)
    extended = extend_rel_pos_bias_table(table, src, dst)
    assert extended.shape == (rel_pos_table_size(dst), 2)
    torch.testing.assert_close(extended[-3:], table[-3:], rtol=0, atol=0)
    learned, fitted = _offset_bias(table, src), _offset_bias(extended, dst)
    for (dy, dx), bias in fitted.items():
        nearest = (max(-src[0] + 1, min(dy, src[0] - 1)), max(-src[1] + 1, min(dx, src[1] - 1)))
        torch.testing.assert_close(bias, learned[nearest], rtol=0, atol=0)


def test_extended_abs_embed_keeps_learned_positions_and_repeats_the_border():
    pos_embed = torch.randn(1, 1 + 3 * 4, 6)
    grid_tokens = pos_embed[0, 1:].reshape(3, 4, 6)
    extended = extend_abs_pos_embed(pos_embed, (3, 4), (5, 6))[0]
    torch.testing.assert_close(extended[0], pos_embed[0, 0], rtol=0, atol=0)
    fitted = extended[1:].reshape(5, 6, 6)
    torch.testing.assert_close(fitted[:3, :4], grid_tokens, rtol=0, atol=0)
    torch.testing.assert_close(fitted[4, 5], grid_tokens[2, 3], rtol=0, atol=0)
    torch.testing.assert_close(fitted[1, 5], grid_tokens[1, 3], rtol=0, atol=0)
    smaller = extend_abs_pos_embed(pos_embed, (3, 4), (2, 2))[0, 1:].reshape(2, 2, 6)
    torch.testing.assert_close(smaller, grid_tokens[:2, :2], rtol=0, atol=0)


def test_fit_dispatch_and_parse():
    table = torch.randn(rel_pos_table_size((3, 3)), 2)
    torch.testing.assert_close(
        fit_rel_pos_bias_table(table, (3, 3), (4, 5), 'stretch'),
        resize_rel_pos_bias_table(table, (3, 3), (4, 5)),
    )
    pos_embed = torch.randn(1, 10, 4)
    torch.testing.assert_close(
        fit_abs_pos_embed(pos_embed, (3, 3), (4, 5), 'extend'),
        extend_abs_pos_embed(pos_embed, (3, 3), (4, 5)),
    )
    assert parse_position_fit('extend') == ('extend', 'extend')
    assert parse_position_fit(dict(absolute='extend')) == ('stretch', 'extend')
    with pytest.raises(ValueError, match="'bilinear' is not one of"):
        parse_position_fit('bilinear')
    with pytest.raises(ValueError, match="got \\['relative_bias'\\]"):
        parse_position_fit(dict(relative_bias='extend'))
