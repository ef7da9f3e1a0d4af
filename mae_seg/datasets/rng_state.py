"""The states of the global random generators: capture, restore, isolate.

Everything is kept as tensors, ints and lists, so a checkpoint that holds the states still
loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ['capture_rng_states', 'forked_rng', 'restore_rng_states', 'seeded_rng']


def _numpy_state() -> dict:
    name, key, pos, has_gauss, gauss = np.random.get_state()
    return {
        'bit_generator': name,
        'key': torch.from_numpy(key.astype(np.int64)),
        'pos': int(pos),
        'has_gauss': int(has_gauss),
        'gauss': float(gauss),
    }


def _set_numpy_state(state: dict) -> None:
    key = state['key'].numpy().astype(np.uint32)
    np.random.set_state(
        (state['bit_generator'], key, state['pos'], state['has_gauss'], state['gauss'])
    )


def capture_rng_states() -> dict:
    """Python's, numpy's and torch's global generator states (CUDA too, where in use).

    Returns:
        ``{'python': [version, [625 ints], gauss], 'numpy': {...}, 'torch': uint8 tensor,
        'cuda': uint8 tensor or None}``.
    """
    version, internal, gauss = random.getstate()
    return {
        'python': [version, list(internal), gauss],
        'numpy': _numpy_state(),
        'torch': torch.get_rng_state(),
        'cuda': torch.cuda.get_rng_state() if _cuda_in_use() else None,
    }


def restore_rng_states(states: dict) -> None:
    """Put the generators back where :func:`capture_rng_states` found them."""
    version, internal, gauss = states['python']
    random.setstate((version, tuple(internal), gauss))
    _set_numpy_state(states['numpy'])
    torch.set_rng_state(states['torch'])
    if states.get('cuda') is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(states['cuda'])


def _cuda_in_use() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_initialized()


@contextmanager
def forked_rng() -> Iterator[None]:
    """Whatever runs inside draws from the generators without moving them for the caller."""
    python, numpy_state, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state() if _cuda_in_use() else None
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy_state)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda)


@contextmanager
def seeded_rng(*entropy: int) -> Iterator[None]:
    """Inside: python, numpy and torch's CPU generator seeded from ``entropy``; outside:
    untouched.

    The seeds come from numpy's ``SeedSequence``, so nearby entropy (sample 7, sample 8)
    gives unrelated streams.
    """
    words = np.random.SeedSequence(list(entropy)).generate_state(3, dtype=np.uint32)
    with forked_rng():
        random.seed(int(words[0]))
        np.random.seed(int(words[1]))
        # Not torch.manual_seed, which also seeds every CUDA device (100x slower).
        torch.default_generator.manual_seed(int(words[2]))
        yield
