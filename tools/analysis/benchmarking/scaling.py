"""Whole-image inference at growing image sizes: time and peak memory of MAEViT's attention
path for inference against today's dense-bias path, side by side, with a plot.

The model keeps its training grid (``img_size``); each larger image is one forward pass
at its own token grid, positions fitted to it, as whole-image inference runs. Both paths
run on the same model, in alternation; the dense path is forced with
:func:`~mae_seg.models.layers.sdpa.use_attention_path`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from .cases import DENSE_PATH_VARIANT, Case
from .figures import save_png
from .measure import summarize, time_interleaved
from .memory import peak_memory
from .steps import inference_step
from .workloads import WorkloadSpec, build_pair, build_workload

__all__ = ['SCALING_VARIANTS', 'WHOLE_IMAGE_SCALING', 'measure_scaling', 'plot_scaling']

WHOLE_IMAGE_SCALING = 'whole-image-scaling'
# The chosen path first: ratios are taken against today's dense path.
SCALING_VARIANTS = ('ours', DENSE_PATH_VARIANT)


def measure_scaling(
    spec: WorkloadSpec,
    sizes: list[tuple[int, int]],
    warmup: int,
    rounds: int,
    memory: bool,
    threads: int,
    log: Callable[[str], None],
) -> dict:
    """Time (and peak memory of) one fp32 image per size, on both paths.

    Args:
        spec: the backbone workload; its ``image_size`` is the model's ``img_size``.
        sizes: ``(H, W)`` of the images.
        warmup: untimed forwards of each path per size (the first builds the caches).
        rounds: timed forwards of each path per size.
        memory: measure peak memory, one child process per size and path.
        threads: ``torch.set_num_threads`` of the children.
        log: progress lines.

    Returns:
        ``sizes``: per size its ``tokens``, per path its times (and ``memory``: the peak
        resident-set growth of a first forward in a fresh process, ``step_mb``), and
        ``max_abs_diff``: the largest difference of any output between the paths.
    """
    case = Case('infer', 1, 'fp32')
    model = build_pair(build_workload(spec), ['ours'])['ours']
    entries = []
    for size in sizes:
        size_spec = dataclasses.replace(spec, input_size=tuple(size))
        workload = build_workload(size_spec)
        outputs: dict[str, tuple[torch.Tensor, ...]] = {}
        steps = {
            variant: inference_step(workload, model, case, variant, outputs)
            for variant in SCALING_VARIANTS
        }
        log(f'{WHOLE_IMAGE_SCALING}: {size[0]}x{size[1]}, {warmup} warm-up and {rounds} rounds')
        times, _ = time_interleaved(steps, warmup, rounds)
        diff = max(
            (a - b).abs().max().item() for a, b in zip(outputs['ours'], outputs[DENSE_PATH_VARIANT])
        )
        outputs.clear()
        entry = dict(
            size=list(size),
            tokens=1 + (size[0] // 16) * (size[1] // 16),
            max_abs_diff=diff,
            variants={v: summarize(times[v]) for v in SCALING_VARIANTS},
        )
        for variant, stats in entry['variants'].items():
            stats['time_ratio'] = stats['median'] / entry['variants'][DENSE_PATH_VARIANT]['median']
            if memory:
                log(f'{WHOLE_IMAGE_SCALING}: {size[0]}x{size[1]}, peak memory of {variant}')
                stats['memory'] = peak_memory(size_spec, case, variant, threads)
        entries.append(entry)
    return dict(model_img_size=list(spec.image_size), sizes=entries)


def plot_scaling(scaling: dict, path: str, title: str) -> None:
    """Time and peak memory growth against tokens, one line per path, as a PNG at ``path``
    (written whole or not at all)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from .cases import VARIANT_LABELS

    tokens = [entry['tokens'] for entry in scaling['sizes']]
    labels = ['x'.join(map(str, entry['size'])) for entry in scaling['sizes']]
    figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for variant in SCALING_VARIANTS:
        stats = [entry['variants'][variant] for entry in scaling['sizes']]
        time_axis.plot(tokens, [s['median'] for s in stats], 'o-', label=VARIANT_LABELS[variant])
        if all(s.get('memory') for s in stats):
            memory_axis.plot(
                tokens, [s['memory']['step_mb'] for s in stats], 'o-', label=VARIANT_LABELS[variant]
            )
    ylabels = ('seconds per image', 'peak memory growth, MiB')
    for axis, ylabel in zip((time_axis, memory_axis), ylabels):
        axis.set_xscale('log', base=2)
        axis.set_yscale('log')
        axis.set_xticks(tokens, [f'{t}\n{label}' for t, label in zip(tokens, labels)])
        axis.minorticks_off()
        axis.set_xlabel('tokens (image size)')
        axis.set_ylabel(ylabel)
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    save_png(figure, path)
