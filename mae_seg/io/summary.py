"""Readable summaries of parameter-name lists (missing / unexpected keys)."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable

_INDEX = re.compile(r'\.(\d+)\.')


def _ranges(numbers: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``'0-2,5'``."""
    numbers = sorted(set(numbers))
    spans = [[numbers[0], numbers[0]]]
    for number in numbers[1:]:
        if number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ','.join(str(a) if a == b else f'{a}-{b}' for a, b in spans)


def summarize_keys(keys: Iterable[str], max_items: int | None = None) -> str:
    """Collapse per-layer names: ``layers.{0-11}.attn.relative_position_bias_table``.

    Keys that differ only in their first numeric component are merged into one pattern
    with the indices written as ranges, in first-seen order.

    Args:
        keys: parameter names.
        max_items: show at most this many patterns, then how many more there are.
    """
    groups: OrderedDict = OrderedDict()
    for key in keys:
        match = _INDEX.search(key)
        if match is None:
            groups.setdefault(key, [])
            continue
        pattern = f'{key[: match.start()]}.{{}}.{key[match.end() :]}'
        groups.setdefault(pattern, []).append(int(match.group(1)))
    parts = [
        pattern.replace('{}', '{' + _ranges(indices) + '}') if indices else pattern
        for pattern, indices in groups.items()
    ]
    return _join(parts, max_items)


def summarize_modules(keys: Iterable[str], max_items: int | None = None) -> str:
    """Count names per top-level module: ``decoder_blocks.* (96), mask_token``."""
    counts: OrderedDict = OrderedDict()
    for key in keys:
        top = key.split('.', 1)[0]
        counts.setdefault(top, []).append(key)
    parts = [
        top if members == [top] else f'{top}.* ({len(members)})' for top, members in counts.items()
    ]
    return _join(parts, max_items)


def _join(parts: list[str], max_items: int | None) -> str:
    if max_items is not None and len(parts) > max_items:
        return ', '.join(parts[:max_items]) + f', ... ({len(parts) - max_items} more)'
    return ', '.join(parts)
