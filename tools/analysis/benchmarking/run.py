"""The benchmark: every selected case, both models side by side, with the GEMM reference."""

from __future__ import annotations

import dataclasses
import gc
import os.path as osp
import platform
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .cases import BenchmarkError, Case, default_cases, select, variants_for
from .measure import summarize, time_interleaved
from .memory import peak_memory
from .ratio_plot import plot_ratios
from .scaling import WHOLE_IMAGE_SCALING, measure_scaling, plot_scaling
from .steps import (
    GemmStep,
    amp_dtype,
    inference_step,
    make_optimizer,
    training_step,
    vit_linear_shapes,
)
from .whole_vs_slide import compare_whole_and_slide
from .workloads import ARCHS, WorkloadSpec, build_pair, build_workload

__all__ = ['WHOLE_VS_SLIDE', 'BenchmarkOptions', 'run_benchmark']

WHOLE_VS_SLIDE = 'whole-vs-slide'


@dataclass
class BenchmarkOptions:
    """What to measure; the defaults are ViT-B/16 at 512x512, the ADE20K recipe's size.

    Args:
        mode: ``'backbone'`` or ``'segmentor'`` (UPerNet from ``config``).
        arch: a name of :data:`ARCHS`, or backbone settings; ``None`` in segmentor mode
            keeps the config's backbone.
        image_size: ``(H, W)``.
        device: ``'cpu'`` or ``'cuda'``.
        infer_batches: batch sizes of the inference cases.
        train_batch: batch size of the training cases.
        cases: shell-style patterns of the cases to run (all when empty); segmentor mode
            adds ``'whole-vs-slide'``; backbone mode adds ``'whole-image-scaling'``, run
            only when a pattern names it (minutes at ViT-B size).
        warmup: untimed steps of each model before timing (at least 1).
        rounds: timed steps of each model.
        memory: measure peak memory (one child process per case and model).
        config: segmentor config (segmentor mode).
        whole_vs_slide_size: image size of the whole-vs-slide comparison.
        checkpoint: trained segmentor weights for every model (segmentor mode; default:
            random weights from ``seed``), so that the whole-vs-slide agreement is that of
            a trained model.
        image: image file of the whole-vs-slide comparison, resized to
            ``whole_vs_slide_size`` (default: random pixels).
        threads: ``torch.set_num_threads`` (``None``: leave as it is).
        seed: seed of weights and inputs.
        compile: also time MAEViT under ``torch.compile`` with this backend
            (``'inductor'``, torch's default; backbone mode). Its warm-up steps include
            the compilation.
        scaling_sizes: image sizes of ``'whole-image-scaling'``, on a model of
            ``image_size``.
        plot: PNG of ``'whole-image-scaling'`` (time and memory against tokens).
        ratio_plot: PNG of the timed cases' speed-ups (and memory ratios, if measured)
            over mmseg's MAE, a bar chart.
    """

    mode: str = 'backbone'
    arch: str | dict | None = 'vit-b'
    image_size: tuple[int, int] = (512, 512)
    device: str = 'cpu'
    infer_batches: tuple[int, ...] = (1, 2)
    train_batch: int = 2
    cases: list[str] = field(default_factory=list)
    warmup: int = 1
    rounds: int = 3
    memory: bool = True
    config: str | None = None
    whole_vs_slide_size: tuple[int, int] = (512, 683)
    checkpoint: str | None = None
    image: str | None = None
    threads: int | None = None
    seed: int = 0
    compile: str | None = None
    scaling_sizes: tuple[tuple[int, int], ...] = ((512, 512), (1024, 1024), (1024, 2048))
    plot: str | None = None
    ratio_plot: str | None = None


def _check(options: BenchmarkOptions) -> None:
    if options.warmup < 1:
        raise BenchmarkError('--warmup must be at least 1 (FLOPs are counted while warming up)')
    if options.rounds < 1:
        raise BenchmarkError('--rounds must be at least 1')
    if options.device == 'cuda' and not torch.cuda.is_available():
        raise BenchmarkError('--device cuda, but torch sees no CUDA device: use --device cpu')
    if isinstance(options.arch, str) and options.arch not in ARCHS:
        raise BenchmarkError(f'--arch {options.arch}: use one of {", ".join(ARCHS)}')
    if options.mode != 'segmentor' and (options.checkpoint or options.image):
        raise BenchmarkError('--checkpoint and --image are for --mode segmentor')
    if options.compile and options.mode != 'backbone':
        raise BenchmarkError('--compile is for --mode backbone')
    if options.mode != 'backbone' and options.plot:
        raise BenchmarkError('--plot is for --mode backbone (whole-image-scaling)')
    for flag, size in [('--size', options.image_size)] + [
        ('--scaling-sizes', size) for size in options.scaling_sizes
    ]:
        if any(side % 16 for side in size):
            # mmseg's MAE runs only at its img_size, in whole patches.
            raise BenchmarkError(f'{flag} {tuple(size)}: use multiples of the patch size 16')
    for flag, path in [('--plot', options.plot), ('--ratio-plot', options.ratio_plot)]:
        if path and not path.endswith('.png'):
            raise BenchmarkError(f'{flag} {path}: the plot is a PNG, name it *.png')


def _selected(options: BenchmarkOptions) -> tuple[list[Case], bool, bool]:
    """The cases to run, and whether to run the whole-vs-slide comparison and the
    whole-image scaling case."""
    cases = default_cases(tuple(options.infer_batches), options.train_batch)
    names = [case.name for case in cases]
    if options.mode == 'segmentor':
        names.append(WHOLE_VS_SLIDE)
    elif options.cases:
        names.append(WHOLE_IMAGE_SCALING)
    chosen = select(names, options.cases or ['*'])
    if options.plot and WHOLE_IMAGE_SCALING not in chosen:
        raise BenchmarkError(f'--plot is the plot of --cases {WHOLE_IMAGE_SCALING}: add it')
    cases = [case for case in cases if case.name in chosen]
    if options.ratio_plot and not cases:
        raise BenchmarkError(
            '--ratio-plot charts the timed cases: add one to --cases, e.g. infer-b1-fp32'
        )
    return cases, WHOLE_VS_SLIDE in chosen, WHOLE_IMAGE_SCALING in chosen


def _vit_dims(backbone: nn.Module) -> dict[str, int]:
    """Channels, FFN channels, tokens per image and blocks of a built MAE backbone."""
    tokens, embed_dims = backbone.pos_embed.shape[1:]
    hidden = max(m.out_features for m in backbone.layers[0].modules() if isinstance(m, nn.Linear))
    return dict(embed_dims=embed_dims, ffn_dims=hidden, tokens=tokens, layers=len(backbone.layers))


def _environment(device: str) -> dict:
    info = dict(
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        device=device,
        machine=platform.processor() or platform.machine(),
    )
    if device == 'cuda':
        info['gpu'] = torch.cuda.get_device_name()
    return info


def run_benchmark(options: BenchmarkOptions, log: Callable[[str], None] = print) -> dict:
    """Measure the selected cases; the result is what ``--json`` writes. Charts asked for
    (``plot``, ``ratio_plot``) are written too.

    Raises:
        BenchmarkError: options that cannot run.
    """
    result = _measure(options, log)
    if options.ratio_plot:
        plot_ratios(result, options.ratio_plot)
        log(f'ratio plot written to {options.ratio_plot}')
    return result


def _measure(options: BenchmarkOptions, log: Callable[[str], None]) -> dict:
    _check(options)
    if options.threads:
        torch.set_num_threads(options.threads)
    cases, run_whole_vs_slide, run_scaling = _selected(options)
    spec = WorkloadSpec(
        mode=options.mode,
        arch=ARCHS[options.arch] if isinstance(options.arch, str) else options.arch,
        image_size=tuple(options.image_size),
        device=options.device,
        config=options.config,
        seed=options.seed,
    )
    workload = build_workload(spec)
    if not cases and not run_whole_vs_slide:
        return _scaling_only(options, spec, log)
    models = build_pair(workload, ['mmseg', 'ours'])
    if options.checkpoint:
        workload.load_weights(models, options.checkpoint)
    # The same MAEViT, parameters and optimizer shared; compiled once for the whole run.
    compiled = torch.compile(models['ours'], backend=options.compile) if options.compile else None
    arch = _vit_dims(workload.backbone(models['mmseg']))
    result = dict(
        options=dataclasses.asdict(options),
        environment=_environment(options.device),
        arch=arch,
        cases=[],
    )
    synchronize = torch.cuda.synchronize if options.device == 'cuda' else lambda: None
    with tempfile.TemporaryDirectory() as tmp:
        # Each case starts from the same weights: training steps change them.
        weights = osp.join(tmp, 'weights.pth')
        torch.save(models['mmseg'].state_dict(), weights)

        def reset_weights() -> None:
            for model in models.values():
                model.load_state_dict(torch.load(weights, weights_only=True))

        for case in cases:
            log(f'{case.name}: {options.warmup} warm-up and {options.rounds} timed rounds')
            reset_weights()
            # The linear layers are most of a backbone's work, not of a segmentor's.
            gemm = None
            if options.mode == 'backbone':
                gemm = GemmStep(
                    vit_linear_shapes(arch['embed_dims'], arch['ffn_dims']),
                    case.batch * arch['tokens'],
                    case.task,
                    amp_dtype(options.device) if case.precision == 'amp' else torch.float32,
                    options.device,
                    repeats=arch['layers'],
                )
            entry = _time_case(workload, models, case, gemm, options, synchronize, compiled)
            if options.memory:
                _measure_memory(entry, spec, case, log, options.compile)
            result['cases'].append(entry)
        if run_whole_vs_slide:
            height, width = options.whole_vs_slide_size
            log(f'{WHOLE_VS_SLIDE}: {height}x{width} image')
            reset_weights()
            result['whole_vs_slide'] = compare_whole_and_slide(
                workload,
                models,
                image_size=(height, width),
                warmup=options.warmup,
                rounds=options.rounds,
                synchronize=synchronize,
                image=options.image,
            )
            result['whole_vs_slide'].update(
                weights=options.checkpoint or f'random (seed {options.seed})',
                image=options.image or f'random (seed {options.seed})',
            )
    if run_scaling:
        del models
        gc.collect()
        _add_scaling(result, options, spec, log)
    return result


def _scaling_only(options: BenchmarkOptions, spec: WorkloadSpec, log) -> dict:
    """The result of a run of the whole-image scaling case alone: no mmseg model built."""
    result = dict(
        options=dataclasses.asdict(options),
        environment=_environment(options.device),
        arch=None,
        cases=[],
    )
    _add_scaling(result, options, spec, log)
    return result


def _add_scaling(result: dict, options: BenchmarkOptions, spec: WorkloadSpec, log) -> None:
    result['whole_image_scaling'] = measure_scaling(
        spec,
        [tuple(size) for size in options.scaling_sizes],
        options.warmup,
        options.rounds,
        options.memory,
        torch.get_num_threads(),
        log,
    )
    if options.plot:
        name = options.arch if isinstance(options.arch, str) else 'custom ViT'
        env = result['environment']
        title = (
            f'{name} whole-image inference, fp32, batch 1, {env["device"]}, '
            f'{env["threads"]} threads, torch {env["torch"]}'
        )
        plot_scaling(result['whole_image_scaling'], options.plot, title)
        log(f'{WHOLE_IMAGE_SCALING}: plot written to {options.plot}')


def _steps(
    workload, models: dict[str, nn.Module], case: Case, compiled: nn.Module | None
) -> dict[str, Callable[[], None]]:
    """One step per variant; MAEViT with and without ``with_cp``, and compiled, share
    parameters and optimizer."""

    def model_of(variant: str) -> str:
        return 'mmseg' if variant == 'mmseg' else 'ours'

    def runner(variant: str) -> nn.Module:
        return compiled if variant == 'ours_compiled' else models[model_of(variant)]

    variants = variants_for(case, compiled is not None)
    if case.task == 'infer':
        return {v: inference_step(workload, runner(v), case) for v in variants}
    optimizers = {name: make_optimizer(model) for name, model in models.items()}
    return {
        v: training_step(workload, runner(v), optimizers[model_of(v)], case, v == 'ours_cp')
        for v in variants
    }


def _time_case(
    workload, models, case: Case, gemm: GemmStep | None, options, synchronize, compiled=None
) -> dict:
    """Times of every variant and of the GEMM reference, and the ratios between them."""
    steps = _steps(workload, models, case, compiled)
    variants = list(steps)
    if gemm is not None:
        steps['gemm'] = gemm
    times, flops = time_interleaved(
        steps, options.warmup, options.rounds, synchronize, flops_of='mmseg'
    )
    del steps  # optimizer states
    gc.collect()
    gemm_stats = None
    if gemm is not None:
        gemm_stats = summarize(times['gemm'])
        gemm_stats.update(flops=gemm.flops, gflops=gemm.flops / gemm_stats['median'] / 1e9)
    reference = summarize(times['mmseg'])
    entry = dict(
        case=case.name,
        task=case.task,
        batch=case.batch,
        precision=case.precision,
        flops=flops,
        gemm=gemm_stats,
        variants={},
    )
    for variant in variants:
        stats = summarize(times[variant])
        stats['gflops'] = flops / stats['median'] / 1e9
        stats['gemm_share'] = stats['gflops'] / gemm_stats['gflops'] if gemm_stats else None
        stats['speedup'] = reference['median'] / stats['median']
        stats['speedup_of_min'] = reference['min'] / stats['min']
        entry['variants'][variant] = stats
    return entry


def _measure_memory(
    entry: dict, spec: WorkloadSpec, case: Case, log, compile_backend: str | None = None
) -> None:
    """Peak memory of each variant in a child process, and its ratio to mmseg's."""
    for variant, stats in entry['variants'].items():
        if variant == 'ours_compiled' and spec.device != 'cuda':
            # A CPU process's peak resident set would count the compiler's own memory.
            stats['memory'] = None
            continue
        log(f'{case.name}: peak memory of {variant}')
        stats['memory'] = peak_memory(
            spec, case, variant, torch.get_num_threads(), backend=compile_backend
        )
    reference = entry['variants']['mmseg']['memory']['net_mb']
    for stats in entry['variants'].values():
        if stats['memory']:
            stats['memory_ratio'] = stats['memory']['net_mb'] / reference
