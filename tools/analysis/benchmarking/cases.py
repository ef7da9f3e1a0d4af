"""What the benchmark measures: cases (task, batch, precision) and the models compared."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

__all__ = [
    'DENSE_PATH_VARIANT',
    'VARIANT_ATTENTION_PATHS',
    'VARIANT_LABELS',
    'BenchmarkError',
    'Case',
    'default_cases',
    'select',
    'variants_for',
]

# The reference first: every ratio is taken against it.
VARIANT_LABELS = {
    'mmseg': "mmseg's MAE",
    'ours': 'MAEViT',
    'ours_cp': 'MAEViT with_cp',
    'ours_compiled': 'MAEViT compiled',
    'ours_dense': 'MAEViT, dense bias',
}

#: MAEViT forced onto today's inference path, the whole (heads, N, N) bias gathered per
#: layer from a cached (N, N) index, for the whole-image scaling case.
DENSE_PATH_VARIANT = 'ours_dense'
#: Variants that run every attention call on one path (``use_attention_path``).
VARIANT_ATTENTION_PATHS = {DENSE_PATH_VARIANT: 'fused_sdpa'}


class BenchmarkError(ValueError):
    """An option the benchmark cannot run with; the message names the fix."""


@dataclass(frozen=True)
class Case:
    """One measured situation.

    Args:
        task: ``'infer'`` (forward without grad) or ``'train'`` (forward, backward and
            an AdamW step).
        batch: images per step.
        precision: ``'fp32'``, or ``'amp'`` (bf16 autocast on the CPU, fp16 on CUDA).
    """

    task: str
    batch: int
    precision: str

    @property
    def name(self) -> str:
        return f'{self.task}-b{self.batch}-{self.precision}'


def default_cases(infer_batches: tuple[int, ...] = (1, 2), train_batch: int = 2) -> list[Case]:
    """Inference at each batch size and a training step, in fp32 and mixed precision.

    Inference comes first: it then runs in a process whose heap is as an inference job's,
    not one left large and fragmented by training steps (which would spare mmseg's MAE
    many page faults on its ``N^2`` temporaries and change its inference time by up to 2x).
    """
    precisions = ('fp32', 'amp')
    cases = [Case('infer', batch, p) for p in precisions for batch in infer_batches]
    return cases + [Case('train', train_batch, p) for p in precisions]


def select(names: list[str], patterns: list[str]) -> list[str]:
    """The names that match one of ``patterns`` (shell-style, e.g. ``'infer-*'``), in order.

    Raises:
        BenchmarkError: a pattern matches no name.
    """
    for pattern in patterns:
        if not fnmatch.filter(names, pattern):
            raise BenchmarkError(f'--cases {pattern!r} matches none of: {", ".join(names)}')
    return [name for name in names if any(fnmatch.fnmatch(name, p) for p in patterns)]


def variants_for(case: Case, compiled: bool = False) -> list[str]:
    """mmseg's MAE and MAEViT; for training also MAEViT with activation checkpointing;
    with ``compiled``, MAEViT under ``torch.compile`` too."""
    variants = ['mmseg', 'ours', 'ours_cp'] if case.task == 'train' else ['mmseg', 'ours']
    return variants + ['ours_compiled'] if compiled else variants
