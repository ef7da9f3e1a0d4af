"""Position geometry for ViT backbones: relative position indices and resizing of position
parameters to another token grid. Pure functions, no module state.

A relative position bias table follows BEiT's layout: ``(2*H-1) * (2*W-1)`` entries for
token-to-token offsets, then three for cls-to-token, token-to-cls and cls-to-cls.

Position parameters trained on one grid are fitted to another in one of two ways
(:data:`POSITION_FITS`):

- ``'stretch'``: resample bicubically, so the parameters span the new grid; every learned
  offset (and the absolute embedding of every learned position) moves to a new scale;
- ``'extend'``: keep each learned parameter where it was trained and give positions beyond
  the trained range the parameter of the nearest trained one (a smaller grid keeps the part
  it needs, unchanged).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    'NUM_CLS_ENTRIES',
    'POSITION_FITS',
    'extend_abs_pos_embed',
    'extend_rel_pos_bias_table',
    'fit_abs_pos_embed',
    'fit_rel_pos_bias_table',
    'parse_position_fit',
    'relative_position_index',
    'rel_pos_bias_grid_view',
    'rel_pos_table_size',
    'rel_pos_grid_from_table_size',
    'resize_rel_pos_bias_table',
    'resize_abs_pos_embed',
]

Grid = tuple[int, int]

NUM_CLS_ENTRIES = 3

POSITION_FITS = ('stretch', 'extend')


def _same_grid(src_grid: Grid, dst_grid: Grid) -> bool:
    """Whether the grids are equal, so a fit has nothing to do.

    Always false under ``torch.export`` (ONNX export): the sizes are symbolic there, and
    comparing them would fix the exported graph to the example's grid; fitting to the same
    grid is exact (bicubic at integer positions, or each position its own nearest).
    """
    return not torch.compiler.is_exporting() and tuple(src_grid) == tuple(dst_grid)


def rel_pos_table_size(grid: Grid) -> int:
    """Number of rows of a relative position bias table for a token grid ``(H, W)``."""
    return (2 * grid[0] - 1) * (2 * grid[1] - 1) + NUM_CLS_ENTRIES


def rel_pos_grid_from_table_size(num_rows: int) -> Grid:
    """The square token grid whose relative position table has ``num_rows`` rows.

    Raises:
        ValueError: if no square grid gives that many rows.
    """
    side = math.isqrt(num_rows - NUM_CLS_ENTRIES)
    if side * side != num_rows - NUM_CLS_ENTRIES or side % 2 == 0:
        raise ValueError(
            f'a relative position bias table with {num_rows} rows does not belong to a '
            'square token grid'
        )
    return ((side + 1) // 2,) * 2


def relative_position_index(grid: Grid) -> torch.Tensor:
    """Index into the bias table for every (query, key) pair of ``1 + H*W`` tokens.

    Args:
        grid: token grid ``(H, W)``.

    Returns:
        LongTensor ``(1 + H*W, 1 + H*W)``; token 0 is the cls token.
    """
    height, width = grid
    coords = torch.stack(
        torch.meshgrid(torch.arange(height), torch.arange(width), indexing='ij')
    ).flatten(1)
    relative = coords[:, :, None] - coords[:, None, :]  # (2, HW, HW)
    index_hw = (relative[0] + height - 1) * (2 * width - 1) + (relative[1] + width - 1)
    # The NUM_CLS_ENTRIES cls entries follow the offset entries, in the order the module
    # docstring gives.
    num_offsets = rel_pos_table_size(grid) - NUM_CLS_ENTRIES
    # Sums, not range(): under torch.export the sizes are symbolic and range() would fix them.
    cls_to_token, token_to_cls, cls_to_cls = (num_offsets + i for i in range(NUM_CLS_ENTRIES))
    index = torch.empty((height * width + 1,) * 2, dtype=torch.long)
    index[1:, 1:] = index_hw
    index[0, :] = cls_to_token
    index[:, 0] = token_to_cls
    index[0, 0] = cls_to_cls
    return index


def rel_pos_bias_grid_view(table: torch.Tensor, grid: Grid) -> torch.Tensor:
    """The token-to-token part of a head-major bias table as a view over query and key
    positions, with the keys in reverse order: no copy, no index.

    The bias of query ``(r, c)`` and key ``(r', c')`` is entry
    ``(r - r' + H - 1) * (2W - 1) + (c - c' + W - 1)``; for the key ``(H-1-r', W-1-c')``
    it is ``(r + r') * (2W - 1) + (c + c')``, which grows with each of the four
    coordinates, so it is a strided view of the table.

    Args:
        table: ``(heads, rel_pos_table_size(grid))``, head-major, any strides.
        grid: token grid ``(H, W)``.

    Returns:
        ``(heads, H, W, H, W)`` view, ``[h, r, c, r', c']`` the bias of query ``(r, c)``
        and key ``(H-1-r', W-1-c')``, i.e. of grid token ``r * W + c`` and the key at
        position ``r' * W + c'`` of the grid tokens in reverse order.
    """
    height, width = grid
    step = table.stride(1)
    row_step = (2 * width - 1) * step
    return table.as_strided(
        (table.shape[0], height, width, height, width),
        (table.stride(0), row_step, step, row_step, step),
        table.storage_offset(),
    )


def resize_rel_pos_bias_table(table: torch.Tensor, src_grid: Grid, dst_grid: Grid) -> torch.Tensor:
    """Resample a relative position bias table to another token grid.

    The ``(2H-1, 2W-1)`` map of offset biases is resized bicubically with the zero offset
    kept at the centre and the largest offsets at the borders (``align_corners=True``), the
    same stretch the absolute embedding gets; the three cls entries are kept. Unlike mmseg's
    geometric-sequence resize (square grids only, scipy's removed ``interp2d``), any grid
    works, and it is differentiable.

    Args:
        table: ``(rel_pos_table_size(src_grid), num_heads)``.
        src_grid: grid the table was made for.
        dst_grid: grid to resize to.

    Returns:
        ``(rel_pos_table_size(dst_grid), num_heads)``.
    """
    if _same_grid(src_grid, dst_grid):
        return table
    src_h, src_w = 2 * src_grid[0] - 1, 2 * src_grid[1] - 1
    dst_h, dst_w = 2 * dst_grid[0] - 1, 2 * dst_grid[1] - 1
    offsets, cls_entries = table[:-NUM_CLS_ENTRIES], table[-NUM_CLS_ENTRIES:]
    offsets = offsets.t().reshape(1, -1, src_h, src_w)
    offsets = F.interpolate(
        offsets.float(), size=(dst_h, dst_w), mode='bicubic', align_corners=True
    ).to(table.dtype)
    offsets = offsets.reshape(-1, dst_h * dst_w).t()
    return torch.cat([offsets, cls_entries], dim=0)


def resize_abs_pos_embed(
    pos_embed: torch.Tensor, src_grid: Grid, dst_grid: Grid, num_prefix_tokens: int = 1
) -> torch.Tensor:
    """Bicubically resize an absolute position embedding to another token grid.

    Same resampling as timm's ``resample_abs_pos_embed`` and mmseg's ``resize_pos_embed``
    (``align_corners=False``), for non-square grids too; prefix (cls) tokens are kept.

    Args:
        pos_embed: ``(1, num_prefix_tokens + H*W, C)``.
        src_grid: ``(H, W)`` of ``pos_embed``.
        dst_grid: grid to resize to.
        num_prefix_tokens: leading tokens that carry no grid position.

    Returns:
        ``(1, num_prefix_tokens + H'*W', C)``.
    """
    if _same_grid(src_grid, dst_grid):
        return pos_embed
    prefix, grid_tokens = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    channels = pos_embed.shape[-1]
    grid_tokens = grid_tokens.reshape(1, src_grid[0], src_grid[1], channels).permute(0, 3, 1, 2)
    grid_tokens = F.interpolate(
        grid_tokens.float(), size=tuple(dst_grid), mode='bicubic', align_corners=False
    ).to(pos_embed.dtype)
    grid_tokens = grid_tokens.permute(0, 2, 3, 1).reshape(1, -1, channels)
    return torch.cat([prefix, grid_tokens], dim=1)


def _nearest_trained(num_dst: int, num_src: int, shift: int) -> torch.Tensor:
    """For each of ``num_dst`` positions, the trained position ``i - shift`` clamped to
    ``[0, num_src)``: itself where it was trained, the nearest trained one beyond."""
    return (torch.arange(num_dst) - shift).clamp_(0, num_src - 1)


def extend_rel_pos_bias_table(table: torch.Tensor, src_grid: Grid, dst_grid: Grid) -> torch.Tensor:
    """Fit a relative position bias table to another grid, keeping every learned offset.

    An offset the table was trained on keeps its bias; a larger offset takes the bias of
    the largest trained offset in its direction (row and column clamped separately); the
    three cls entries are kept.

    Args:
        table: ``(rel_pos_table_size(src_grid), num_heads)``.
        src_grid: grid the table was made for.
        dst_grid: grid to fit it to.

    Returns:
        ``(rel_pos_table_size(dst_grid), num_heads)``.
    """
    if _same_grid(src_grid, dst_grid):
        return table
    src_h, src_w = 2 * src_grid[0] - 1, 2 * src_grid[1] - 1
    dst_h, dst_w = 2 * dst_grid[0] - 1, 2 * dst_grid[1] - 1
    rows = _nearest_trained(dst_h, src_h, dst_grid[0] - src_grid[0]).to(table.device)
    cols = _nearest_trained(dst_w, src_w, dst_grid[1] - src_grid[1]).to(table.device)
    source = (rows[:, None] * src_w + cols[None, :]).flatten()
    return torch.cat([table[source], table[-NUM_CLS_ENTRIES:]], dim=0)


def extend_abs_pos_embed(
    pos_embed: torch.Tensor, src_grid: Grid, dst_grid: Grid, num_prefix_tokens: int = 1
) -> torch.Tensor:
    """Fit an absolute position embedding to another grid, keeping every learned position.

    Position ``(i, j)`` of the trained grid keeps its embedding; rows and columns beyond it
    repeat the last trained row and column (a smaller grid keeps its top-left part).

    Args:
        pos_embed: ``(1, num_prefix_tokens + H*W, C)``.
        src_grid: ``(H, W)`` of ``pos_embed``.
        dst_grid: grid to fit it to.
        num_prefix_tokens: leading tokens that carry no grid position.

    Returns:
        ``(1, num_prefix_tokens + H'*W', C)``.
    """
    if _same_grid(src_grid, dst_grid):
        return pos_embed
    rows = _nearest_trained(dst_grid[0], src_grid[0], 0).to(pos_embed.device)
    cols = _nearest_trained(dst_grid[1], src_grid[1], 0).to(pos_embed.device)
    source = num_prefix_tokens + (rows[:, None] * src_grid[1] + cols[None, :]).flatten()
    return torch.cat([pos_embed[:, :num_prefix_tokens], pos_embed[:, source]], dim=1)


def _check_fit(fit: str) -> None:
    if fit not in POSITION_FITS:
        raise ValueError(f'position fit {fit!r} is not one of {POSITION_FITS}')


def parse_position_fit(position_fit: str | dict) -> tuple[str, str]:
    """``(relative, absolute)`` fits from one name for both or
    ``dict(relative=..., absolute=...)`` (a missing key means ``'stretch'``).

    Raises:
        ValueError: an unknown key or fit.
    """
    if isinstance(position_fit, str):
        fits = dict(relative=position_fit, absolute=position_fit)
    elif isinstance(position_fit, dict):
        unknown = set(position_fit) - {'relative', 'absolute'}
        if unknown:
            raise ValueError(f'position_fit keys are relative and absolute, got {sorted(unknown)}')
        fits = {'relative': 'stretch', 'absolute': 'stretch', **position_fit}
    else:
        raise TypeError(f'position_fit must be a str or a dict, got {position_fit!r}')
    for fit in fits.values():
        _check_fit(fit)
    return fits['relative'], fits['absolute']


def fit_rel_pos_bias_table(
    table: torch.Tensor, src_grid: Grid, dst_grid: Grid, fit: str = 'stretch'
) -> torch.Tensor:
    """:func:`resize_rel_pos_bias_table` (``'stretch'``) or
    :func:`extend_rel_pos_bias_table` (``'extend'``)."""
    _check_fit(fit)
    if fit == 'extend':
        return extend_rel_pos_bias_table(table, src_grid, dst_grid)
    return resize_rel_pos_bias_table(table, src_grid, dst_grid)


def fit_abs_pos_embed(
    pos_embed: torch.Tensor, src_grid: Grid, dst_grid: Grid, fit: str = 'stretch'
) -> torch.Tensor:
    """:func:`resize_abs_pos_embed` (``'stretch'``) or :func:`extend_abs_pos_embed`
    (``'extend'``), for one prefix (cls) token."""
    _check_fit(fit)
    if fit == 'extend':
        return extend_abs_pos_embed(pos_embed, src_grid, dst_grid)
    return resize_abs_pos_embed(pos_embed, src_grid, dst_grid)
