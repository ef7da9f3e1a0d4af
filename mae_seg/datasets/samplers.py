"""An infinite sampler that starts anywhere, and samples whose randomness depends on nothing else.

mmengine's ``IterBasedTrainLoop`` resumes by pulling every batch already trained on through
the dataloader again, and the augmentation of a sample depends on which worker process
prepared it and what that worker did before. Here the sampler jumps to the sample where
the run stopped, and each sample is augmented with generators seeded from its position in
the sample stream, so a resumed run sees the very batches an uninterrupted one sees, with
any number of workers.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sized

import torch
from mmengine.dist import get_dist_info, sync_random_seed
from mmseg.registry import DATA_SAMPLERS, DATASETS
from torch.utils.data import Dataset, Sampler

from .rng_state import seeded_rng

__all__ = ['PositionSeededDataset', 'ResumableInfiniteSampler', 'infinite_indices']


def infinite_indices(size: int, seed: int, shuffle: bool, start: int = 0) -> Iterator[int]:
    """The index stream of mmengine's ``InfiniteSampler`` from position ``start`` on.

    Epochs are permutations drawn one after another from one generator seeded with
    ``seed`` (as mmengine does), so reaching position ``start`` draws the permutations of
    the epochs before it (microseconds each; nothing is loaded) instead of a single one.
    """
    epoch, offset = divmod(start, size)
    generator = torch.Generator()
    generator.manual_seed(seed)
    for _ in range(epoch if shuffle else 0):
        torch.randperm(size, generator=generator)
    while True:
        order = torch.randperm(size, generator=generator) if shuffle else torch.arange(size)
        yield from order[offset:].tolist()
        offset = 0


@DATA_SAMPLERS.register_module()
class ResumableInfiniteSampler(Sampler):
    """mmengine's ``InfiniteSampler``, same indices, that can start at any position.

    Yields ``(index, position)`` pairs: ``position`` counts samples over all ranks (rank
    ``r`` of ``w`` takes positions ``r, r + w, r + 2w, ...``), and
    :class:`PositionSeededDataset` seeds the sample's augmentation from it.
    :meth:`start_at` sets where the next ``iter()`` starts, so a resumed loop skips what was
    trained on without loading it.

    Args:
        dataset: the data set (only its length is used).
        shuffle: a new random order each epoch, else ``0, 1, ..., len - 1`` repeated.
        seed: the same on every rank; ``None`` draws one and shares it between ranks.
    """

    def __init__(self, dataset: Sized, shuffle: bool = True, seed: int | None = None) -> None:
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.size = len(dataset)
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else seed
        self.start = 0

    def start_at(self, position: int) -> None:
        """Begin the next iteration at ``position`` of the stream of all ranks together."""
        self.start = position

    def __iter__(self) -> Iterator[tuple[int, int]]:
        first = self.start + self.rank
        stream = infinite_indices(self.size, self.seed, self.shuffle, first)
        ranks_samples = itertools.islice(stream, 0, None, self.world_size)
        positions = itertools.count(first, self.world_size)
        return zip(ranks_samples, positions)

    def __len__(self) -> int:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        """Nothing to do: epochs follow from the position (``DistSamplerSeedHook`` calls it)."""


@DATASETS.register_module()
class PositionSeededDataset(Dataset):
    """A data set whose sample at stream position ``p`` is prepared with generators seeded by
    ``(seed, p)``, for :class:`ResumableInfiniteSampler`.

    Random transforms (resize ratio, crop, flip, photometric changes) then depend on the
    position alone: not on the worker process, the number of workers, or whether the run
    was resumed. The generators of the calling process are left as they were.

    Args:
        dataset: the data set config or object to wrap.
        seed: mixed into every sample's seed; the sampler's seed by default.
    """

    def __init__(self, dataset: dict | Dataset, seed: int = 0) -> None:
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.seed = seed

    @property
    def metainfo(self) -> dict:
        return self.dataset.metainfo

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: int | tuple[int, int]):
        if isinstance(item, tuple):
            index, position = item
            with seeded_rng(self.seed, position):
                return self.dataset[index]
        return self.dataset[item]
