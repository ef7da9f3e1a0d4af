"""Saving the benchmark's charts."""

from __future__ import annotations

from mae_seg.io import atomic_output

__all__ = ['save_png']


def save_png(figure, path: str) -> None:
    """Write a matplotlib ``figure`` as a PNG at ``path``, whole or not at all, and close it.

    A chart is drawn after minutes of measuring: a half-written one must not replace a good
    one of an earlier run.
    """
    import matplotlib.pyplot as plt

    with atomic_output(path) as temporary:
        figure.savefig(temporary, format='png', dpi=100)
    plt.close(figure)
