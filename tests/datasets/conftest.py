"""Fixtures of the data-set tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def labels_3x():
    """``(16, 24)`` labels with classes 0, 1, 2 in known proportions."""
    labels = np.zeros((16, 24), np.uint8)
    labels[:, 8:16] = 1
    labels[:, 16:] = 2
    return labels
