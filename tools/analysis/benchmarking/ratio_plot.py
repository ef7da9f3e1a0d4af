"""The per-case ratios of a benchmark result as a bar chart: speed-up over mmseg's MAE and,
where measured, peak memory relative to it.

Drawn from the result dict that :func:`~benchmarking.run.run_benchmark` returns and
``--json`` writes, so a chart in the docs comes from a run, and can be redrawn from its
saved JSON (``tools/analysis/plot_benchmark.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

from .cases import VARIANT_LABELS, BenchmarkError
from .figures import save_png
from .report import amp_name, format_header, peak_memory_name

__all__ = ['load_result', 'plot_ratios', 'ratio_figure']

REFERENCE = 'mmseg'


def load_result(path: str) -> dict:
    """Read a result written by ``benchmark.py --json PATH``.

    Raises:
        BenchmarkError: the file is missing, not JSON, or not a benchmark result with at
            least one timed case.
    """
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise BenchmarkError(f'{path}: cannot read it ({error.strerror})') from None
    try:
        result = json.loads(text)
    except json.JSONDecodeError as error:
        raise BenchmarkError(f'{path}: not JSON ({error.msg} at line {error.lineno})') from None
    if not isinstance(result, dict) or not {'options', 'environment', 'cases'} <= set(result):
        raise BenchmarkError(
            f'{path}: not a result of tools/analysis/benchmark.py --json '
            '(no options, environment and cases)'
        )
    _check_cases(result['cases'], path)
    return result


# What the chart and the report read of each case and each of its models.
_CASE_KEYS = {'case', 'variants', 'gemm'}
_MODEL_KEYS = {'median', 'min', 'speedup', 'gflops', 'gemm_share'}


def _check_cases(cases: list, source: str) -> None:
    if not cases:
        raise BenchmarkError(
            f'{source}: no timed case to chart (whole-vs-slide and whole-image-scaling '
            'have their own tables)'
        )
    for entry in cases:
        if not isinstance(entry, dict) or not _CASE_KEYS <= set(entry):
            raise BenchmarkError(f'{source}: a case lacks one of {", ".join(sorted(_CASE_KEYS))}')
        variants = entry['variants']
        if REFERENCE not in variants:
            raise BenchmarkError(f"{source}: case {entry['case']} lacks mmseg's MAE")
        for variant, stats in variants.items():
            missing = sorted(_MODEL_KEYS - set(stats))
            if missing:
                raise BenchmarkError(
                    f'{source}: case {entry["case"]}, {variant}: no {", ".join(missing)}'
                )


def _models(cases: list[dict]) -> list[str]:
    """The compared models, in the order of :data:`VARIANT_LABELS`, without the reference."""
    present = {variant for entry in cases for variant in entry['variants']}
    return [v for v in VARIANT_LABELS if v in present and v != REFERENCE]


def _ratios(cases: list[dict], model: str, key: str) -> list[float | None]:
    return [entry['variants'].get(model, {}).get(key) for entry in cases]


def plot_ratios(result: dict, path: str) -> None:
    """Write :func:`ratio_figure` of ``result`` as a PNG at ``path`` (whole or not at all).

    Raises:
        BenchmarkError: the result has no timed case.
    """
    save_png(ratio_figure(result), path)


def ratio_figure(result: dict):
    """Bars of each model's speed-up (mmseg's median time / the model's) per case, and of
    its peak memory / mmseg's where the run measured memory; a line at 1 marks mmseg's MAE.
    The title is the run's header (model, size, device, threads, torch, rounds), so the
    chart says what it measured.

    Args:
        result: a benchmark result (``run_benchmark``'s return, or a loaded ``--json``).

    Returns:
        The matplotlib figure: one axis of bars per ratio, each labelled with its value.

    Raises:
        BenchmarkError: the result has no timed case.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    cases = result['cases']
    _check_cases(cases, 'the benchmark result')
    models = _models(cases)
    panels = [('speedup', "speed-up over mmseg's MAE (median time)")]
    if any(r is not None for m in models for r in _ratios(cases, m, 'memory_ratio')):
        panels.append(('memory_ratio', "peak memory / mmseg's MAE's"))
    names = [entry['case'] for entry in cases]
    width = min(0.8 / len(models), 0.5)
    figure, axes = plt.subplots(
        len(panels), 1, figsize=(max(6.0, 1.3 * len(names) + 2), 3.6 * len(panels)), squeeze=False
    )
    for axis, (key, ylabel) in zip(axes[:, 0], panels):
        for index, model in enumerate(models):
            offset = (index - (len(models) - 1) / 2) * width
            points = [
                (position + offset, ratio)
                for position, ratio in enumerate(_ratios(cases, model, key))
                if ratio is not None
            ]
            if not points:
                continue
            xs, ys = zip(*points)
            bars = axis.bar(xs, ys, width, label=VARIANT_LABELS[model])
            axis.bar_label(bars, labels=[f'{y:.2f}x' for y in ys], fontsize=7, padding=1)
        axis.axhline(1.0, color='black', linewidth=0.8, label=f'{VARIANT_LABELS[REFERENCE]} (1x)')
        axis.set_xticks(range(len(names)), names)
        axis.set_ylabel(ylabel)
        axis.margins(y=0.15)
        axis.grid(True, axis='y', alpha=0.3)
        axis.legend(fontsize=8, loc='upper left')
    figure.suptitle('\n'.join(format_header(result)), fontsize=8)
    device = result['environment']['device']
    figure.text(
        0.5,
        0.005,
        f"speed-up: mmseg's median time / the model's; memory: {peak_memory_name(device)} "
        f"of one step / mmseg's; amp: {amp_name(device)} autocast",
        ha='center',
        va='bottom',
        fontsize=7,
    )
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    return figure
