"""Timing steps side by side, and counting the FLOPs of one of them."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from torch.utils.flop_counter import FlopCounterMode

__all__ = ['count_flops', 'summarize', 'time_interleaved']


def count_flops(step: Callable[[], None]) -> int:
    """Run ``step`` once and return the FLOPs of its matrix products and convolutions."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def time_interleaved(
    steps: dict[str, Callable[[], None]],
    warmup: int,
    rounds: int,
    synchronize: Callable[[], None] = lambda: None,
    flops_of: str | None = None,
) -> tuple[dict[str, list[float]], int | None]:
    """Seconds per call of each step, measured in alternation.

    Each round runs every step once, so a change of machine load hits all of them alike;
    the order rotates from round to round, so no step always follows the same one.

    Args:
        steps: name -> step.
        warmup: untimed calls of each step first (at least 1 with ``flops_of``).
        rounds: timed calls of each step.
        synchronize: waits for queued device work (``torch.cuda.synchronize``).
        flops_of: a step whose FLOPs are counted during its first warm-up call.

    Returns:
        name -> ``rounds`` durations in seconds, and the FLOPs of ``flops_of`` (or None).
    """
    names = list(steps)
    flops = None
    for index in range(warmup):
        for name in names:
            if index == 0 and name == flops_of:
                flops = count_flops(steps[name])
            else:
                steps[name]()
            synchronize()
    times: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            synchronize()
            start = time.perf_counter()
            steps[name]()
            synchronize()
            times[name].append(time.perf_counter() - start)
    return times, flops


def summarize(times: list[float]) -> dict:
    """``times`` with their median and minimum."""
    return dict(times=list(times), median=statistics.median(times), min=min(times))
