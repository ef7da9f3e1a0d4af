"""The relative position index of one token grid, built only as far as a path reads it."""

from __future__ import annotations

import torch

from .cache import persistent_tensors
from .positions import Grid, relative_position_index

__all__ = ['RelPosIndex', 'dense_index']


class RelPosIndex:
    """:func:`~.positions.relative_position_index` of ``grid`` on ``device``, lazily.

    The paths that gather the whole ``(heads, N, N)`` bias read :meth:`dense`, the
    ``(N, N)`` int64 index, built on first use and kept (``8 N^2`` bytes: 0.5 GB at 8,192
    tokens); the blockwise inference path reads only :attr:`grid` (the bias is a strided
    view of the table, :func:`~.positions.rel_pos_bias_grid_view`), so that whole-image
    inference never holds an ``N x N`` index. What it keeps is built outside inference
    mode (:func:`~.cache.persistent_tensors`), so it serves every later autograd mode.

    Args:
        grid: token grid ``(H, W)``.
        device: where the index lives.
    """

    def __init__(self, grid: Grid, device: torch.device) -> None:
        self.grid = (int(grid[0]), int(grid[1]))
        self.device = torch.device(device)
        self.num_tokens = 1 + self.grid[0] * self.grid[1]
        self._dense: torch.Tensor | None = None

    def dense(self) -> torch.Tensor:
        """The whole index, ``(N, N)`` int64, built once."""
        if self._dense is None:
            with persistent_tensors():
                self._dense = relative_position_index(self.grid).to(self.device)
        return self._dense

    @property
    def is_dense(self) -> bool:
        """Whether the whole ``(N, N)`` index has been built."""
        return self._dense is not None


def dense_index(index: torch.Tensor | RelPosIndex) -> torch.Tensor:
    """The ``(N, N)`` tensor of an index given either way."""
    return index.dense() if isinstance(index, RelPosIndex) else index
