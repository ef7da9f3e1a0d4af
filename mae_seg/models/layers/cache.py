"""A small least-recently-used cache for per-grid tensors, and how to build what it keeps."""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Callable

import torch


@contextlib.contextmanager
def persistent_tensors() -> Iterator[None]:
    """Build tensors here that a cache keeps across autograd modes.

    A tensor made under ``torch.inference_mode()`` (PyTorch Lightning validates that way) is
    an inference tensor for life: a later forward with autograd that saves it for backward
    raises "Inference tensors cannot be saved for backward". Leaving inference mode makes
    ordinary tensors; ``no_grad`` keeps them out of any graph (leaving inference mode turns
    grad mode back on).
    """
    with torch.inference_mode(False), torch.no_grad():
        yield


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
