"""The issue's performance targets for ViT-B/16 at 512x512, checked against a result."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ['TARGETS', 'Target', 'evaluate_targets']


@dataclass(frozen=True)
class Target:
    """A bound on one measured quantity of the cases that match.

    Args:
        label: what is bounded.
        device: ``'cpu'`` or ``'cuda'``.
        task: ``'infer'`` or ``'train'``.
        precision: ``'fp32'``, ``'amp'``, or ``None`` for both.
        variant: the model measured (``'ours'`` or ``'ours_cp'``).
        quantity: ``'speedup'``, ``'time_ratio'`` (its inverse), ``'memory_ratio'`` or
            ``'gemm_share'``.
        bound: the limit.
        at_least: ``quantity >= bound`` (else ``<=``).
    """

    label: str
    device: str
    task: str
    precision: str | None
    variant: str
    quantity: str
    bound: float
    at_least: bool


TARGETS = [
    Target('inference speed-up, fp32', 'cpu', 'infer', 'fp32', 'ours', 'speedup', 1.3, True),
    Target('inference speed-up, bf16', 'cpu', 'infer', 'amp', 'ours', 'speedup', 1.3, True),
    Target('training step speed-up', 'cpu', 'train', None, 'ours', 'speedup', 1.1, True),
    Target('with_cp peak memory', 'cpu', 'train', None, 'ours_cp', 'memory_ratio', 0.6, False),
    Target('with_cp step time', 'cpu', 'train', None, 'ours_cp', 'time_ratio', 1.4, False),
    Target(
        'fp32 inference, share of GEMM', 'cpu', 'infer', 'fp32', 'ours', 'gemm_share', 0.8, True
    ),
    Target('fp16 training speed-up', 'cuda', 'train', 'amp', 'ours', 'speedup', 1.4, True),
    Target('fp16 training peak memory', 'cuda', 'train', 'amp', 'ours', 'memory_ratio', 0.7, False),
    Target('inference speed-up', 'cuda', 'infer', None, 'ours', 'speedup', 1.5, True),
]


def _value(stats: dict, quantity: str) -> float | None:
    if quantity == 'time_ratio':
        return 1.0 / stats['speedup']
    return stats.get(quantity)


def evaluate_targets(result: dict) -> list[dict]:
    """Each target against each matching case of ``result`` (a :func:`run_benchmark` result).

    Targets are stated for the ViT-B/16 backbone at 512x512; other settings get none.
    A quantity that was not measured (memory with ``--no-memory``) is reported as such.
    """
    options = result['options']
    if (
        options['mode'] != 'backbone'
        or options['arch'] != 'vit-b'
        or tuple(options['image_size']) != (512, 512)
    ):
        return []
    checks = []
    for target in TARGETS:
        if target.device != options['device']:
            continue
        for entry in result['cases']:
            if entry['task'] != target.task:
                continue
            if target.precision not in (None, entry['precision']):
                continue
            value = _value(entry['variants'][target.variant], target.quantity)
            met = None
            if value is not None:
                met = value >= target.bound if target.at_least else value <= target.bound
            checks.append(
                dict(
                    target=target.label,
                    case=entry['case'],
                    quantity=target.quantity,
                    value=value,
                    bound=target.bound,
                    at_least=target.at_least,
                    met=met,
                )
            )
    return checks
