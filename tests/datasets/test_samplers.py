"""ResumableInfiniteSampler against mmengine's InfiniteSampler; per-position seeded samples."""

import itertools
import random

import mmengine.dataset.sampler as mmengine_sampler
import numpy as np
import pytest
import torch
from mmengine.dataset import InfiniteSampler

import mae_seg.datasets.samplers as samplers
from mae_seg.datasets import PositionSeededDataset, ResumableInfiniteSampler
from mae_seg.datasets.rng_state import capture_rng_states, restore_rng_states

SIZE = 7


def as_rank(monkeypatch, rank, world_size):
    for module in (mmengine_sampler, samplers):
        monkeypatch.setattr(module, 'get_dist_info', lambda: (rank, world_size))


@pytest.mark.parametrize('shuffle', [True, False])
@pytest.mark.parametrize(('rank', 'world_size'), [(0, 1), (0, 2), (1, 2), (2, 3)])
def test_same_indices_as_mmengine_infinite_sampler(monkeypatch, shuffle, rank, world_size):
    as_rank(monkeypatch, rank, world_size)
    dataset = list(range(SIZE))
    expected = list(itertools.islice(InfiniteSampler(dataset, shuffle, seed=3), 40))
    ours = list(itertools.islice(ResumableInfiniteSampler(dataset, shuffle, seed=3), 40))
    assert [index for index, _ in ours] == expected
    # Positions count samples over all ranks: rank r takes r, r + w, r + 2w, ...
    assert [position for _, position in ours] == list(range(rank, 40 * world_size, world_size))


@pytest.mark.parametrize(('rank', 'world_size'), [(0, 1), (1, 2)])
@pytest.mark.parametrize('samples_done', [0, 2, 7, 15, 30])
def test_start_at_continues_where_the_stream_was(monkeypatch, rank, world_size, samples_done):
    """Started at the next sample, a rank yields what it would have yielded next."""
    as_rank(monkeypatch, rank, world_size)
    dataset = list(range(SIZE))
    whole = list(itertools.islice(ResumableInfiniteSampler(dataset, seed=5), samples_done + 20))
    resumed = ResumableInfiniteSampler(dataset, seed=5)
    resumed.start_at(samples_done * world_size)
    assert list(itertools.islice(resumed, 20)) == whole[samples_done:]


class RandomDraws(torch.utils.data.Dataset):
    def __len__(self):
        return SIZE

    def __getitem__(self, index):
        return index, random.random(), np.random.rand(), torch.rand(1).item()


def test_sample_randomness_depends_on_seed_and_position_only():
    dataset = PositionSeededDataset(RandomDraws(), seed=11)
    before = capture_rng_states()
    first = dataset[(3, 100)]
    torch.rand(5), np.random.rand(5)  # whatever happened in between
    assert dataset[(3, 100)] == first
    assert dataset[(3, 101)][1:] != first[1:]
    assert PositionSeededDataset(RandomDraws(), seed=12)[(3, 100)][1:] != first[1:]
    # The caller's generators did not move for the sample.
    after = capture_rng_states()
    restore_rng_states(before)
    torch.rand(5), np.random.rand(5)
    assert torch.equal(capture_rng_states()['torch'], after['torch'])


def test_rng_states_survive_a_weights_only_checkpoint(tmp_path):
    states = capture_rng_states()
    expected = (random.random(), np.random.rand(3).tolist(), torch.rand(3))
    torch.save({'rng': states}, tmp_path / 'ckpt.pth')
    restore_rng_states(torch.load(tmp_path / 'ckpt.pth', weights_only=True)['rng'])
    assert random.random() == expected[0]
    assert np.random.rand(3).tolist() == expected[1]
    assert torch.equal(torch.rand(3), expected[2])
