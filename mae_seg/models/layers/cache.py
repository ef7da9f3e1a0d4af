"""A small least-recently-used cache for per-grid tensors."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Callable

import torch


class GridCache:
    """Keeps the tensors of the last ``capacity`` keys.

    Whole-image inference meets a new token grid with almost every image; a bounded
    cache keeps the common grids (sliding-window crops, one per test scale) without
    growing with the data set.
    """

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self._entries: OrderedDict = OrderedDict()

    def get(self, key: Hashable, build: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The tensor for ``key``, built by ``build()`` on a miss."""
        value = self._entries.get(key)
        if value is None:
            value = build()
            self._entries[key] = value
            if len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        return value

    def __len__(self) -> int:
        return len(self._entries)
