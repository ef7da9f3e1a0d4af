"""The benchmark result as a readable table."""

from __future__ import annotations

from .cases import DENSE_PATH_VARIANT, VARIANT_LABELS
from .scaling import SCALING_VARIANTS
from .whole_vs_slide import WHOLE_VS_SLIDE_STEPS

__all__ = ['amp_name', 'format_header', 'format_report', 'peak_memory_name']

_ROW = '{:<15} {:<16} {:>8} {:>8} {:>9} {:>8} {:>7} {:>9} {:>7}'


def format_header(result: dict) -> list[str]:
    """What was measured, where: model, mode, size; device, threads, torch, rounds."""
    options, env, arch = result['options'], result['environment'], result['arch']
    name = options['arch'] if isinstance(options['arch'], str) else 'custom ViT'
    if options['mode'] == 'segmentor':
        name = f'UPerNet segmentor ({options["config"]})'
    size = 'x'.join(str(s) for s in options['image_size'])
    device = env['device'] + (f' ({env["gpu"]})' if 'gpu' in env else '')
    dims = f'{arch["embed_dims"]} dims, {arch["tokens"]} tokens per image, ' if arch else ''
    return [
        f'{name}, {options["mode"]} mode: {dims}img_size {size}',
        f'{device}, {env["threads"]} threads, torch {env["torch"]}; per model '
        f'{options["warmup"]} warm-up + {options["rounds"]} timed steps, models alternating',
    ]


def _case_rows(entry: dict) -> list[str]:
    rows = []
    for index, (variant, stats) in enumerate(entry['variants'].items()):
        memory = stats.get('memory')
        rows.append(
            _ROW.format(
                entry['case'] if index == 0 else '',
                VARIANT_LABELS[variant],
                f'{stats["median"]:.3f}',
                f'{stats["min"]:.3f}',
                f'{stats["speedup"]:.2f}x',
                f'{stats["gflops"]:.1f}',
                '-' if stats['gemm_share'] is None else f'{stats["gemm_share"]:.0%}',
                f'{memory["net_mb"]:.0f}' if memory else '-',
                f'{stats["memory_ratio"]:.2f}x' if memory else '-',
            )
        )
    gemm = entry['gemm']
    if gemm is None:
        return rows
    rows.append(
        _ROW.format(
            '',
            'GEMM reference',
            f'{gemm["median"]:.3f}',
            f'{gemm["min"]:.3f}',
            '',
            f'{gemm["gflops"]:.1f}',
            '100%',
            '',
            '',
        )
    )
    return rows


def amp_name(device: str) -> str:
    """The autocast dtype of the ``amp`` cases on ``device``: fp16 on CUDA, bf16 on the CPU."""
    return 'fp16' if device == 'cuda' else 'bf16'


def peak_memory_name(device: str) -> str:
    """What the peak memory of a case is on ``device``."""
    return 'max_memory_allocated' if device == 'cuda' else 'peak resident set'


def _legend(device: str) -> list[str]:
    peak, amp = peak_memory_name(device), amp_name(device)
    return [
        f'amp: {amp} autocast. infer: forward without autograd; train: forward, backward and',
        'an AdamW step.',
        "speed-up: mmseg's median time / the model's. GFLOP/s: FLOPs of the step (counted on",
        "mmseg's MAE) / median time; % GEMM: of the rate of the GEMM reference, the model's",
        'linear-layer products alone (same shapes, batch and precision; forward and the two',
        'backward products when training), timed in the same rounds.',
        f'peak MiB: {peak} of a child process running one step, less its resident set',
        "after imports (CPU); memory: peak MiB / mmseg's.",
    ]


def _whole_vs_slide(comparison: dict) -> list[str]:
    height, width = comparison['image_size']
    lines = [
        '',
        f'whole image vs sliding windows: {height}x{width} image, crop '
        f'{"x".join(map(str, comparison["crop"]))}, stride '
        f'{"x".join(map(str, comparison["stride"]))}, fp32, batch 1',
        f'weights: {comparison.get("weights", "random")}; '
        f'image: {comparison.get("image", "random")}',
        '{:<24} {:>8} {:>8} {:>9}'.format('way', 'median s', 'min s', 'speed-up'),
    ]
    for name, stats in comparison['ways'].items():
        lines.append(
            '{:<24} {:>8.3f} {:>8.3f} {:>8.2f}x'.format(
                WHOLE_VS_SLIDE_STEPS[name], stats['median'], stats['min'], stats['speedup']
            )
        )
    lines.append(
        f'pixel agreement, MAEViT whole vs slide: '
        f'{comparison["whole_vs_slide_pixel_agreement"]:.2%}; MAEViT slide vs mmseg slide: '
        f'{comparison["slide_ours_vs_mmseg_pixel_agreement"]:.2%}; '
        f'classes predicted: {comparison["classes_predicted"]}'
    )
    return lines


def _scaling(scaling: dict) -> list[str]:
    row = '{:<10} {:>6}  {:<20} {:>9} {:>8} {:>9} {:>10} {:>8} {:>10}'
    lines = [
        '',
        'whole-image inference, fp32, batch 1, model img_size '
        f'{"x".join(map(str, scaling["model_img_size"]))}',
        row.format(
            *('image', 'tokens', 'path', 'median s', 'min s'),
            *('time', 'step MiB', 'memory', 'max |diff|'),
        ),
    ]
    for entry in scaling['sizes']:
        dense_memory = entry['variants'][DENSE_PATH_VARIANT].get('memory')
        for index, variant in enumerate(SCALING_VARIANTS):
            stats = entry['variants'][variant]
            memory = stats.get('memory')
            lines.append(
                row.format(
                    'x'.join(map(str, entry['size'])) if index == 0 else '',
                    entry['tokens'] if index == 0 else '',
                    VARIANT_LABELS[variant],
                    f'{stats["median"]:.3f}',
                    f'{stats["min"]:.3f}',
                    f'{stats["time_ratio"]:.2f}x',
                    f'{memory["step_mb"]:.0f}' if memory else '-',
                    f'{memory["step_mb"] / dense_memory["step_mb"]:.2f}x' if memory else '-',
                    f'{entry["max_abs_diff"]:.1e}' if index == 0 else '',
                )
            )
    first, last = scaling['sizes'][0], scaling['sizes'][-1]
    for variant in SCALING_VARIANTS:
        low = first['variants'][variant].get('memory')
        high = last['variants'][variant].get('memory')
        if low and high:
            lines.append(
                f'{VARIANT_LABELS[variant]}: memory grows {high["step_mb"] / low["step_mb"]:.1f}x '
                f'from {first["tokens"]} to {last["tokens"]} tokens'
            )
    lines += [
        "time: the path's median / the dense path's. step MiB: peak resident set (CPU) or",
        'max_memory_allocated (CUDA) of a first forward in a fresh process, less what it held',
        'before (model, input). max |diff|: largest difference of any output of the two paths.',
    ]
    return lines


def format_report(result: dict) -> str:
    """Header, one block of rows per case, then whole-vs-slide and whole-image scaling if
    measured."""
    lines = format_header(result)
    if result['cases']:
        lines.append('')
        lines.append(
            _ROW.format(
                'case',
                'model',
                'median s',
                'min s',
                'speed-up',
                'GFLOP/s',
                '% GEMM',
                'peak MiB',
                'memory',
            )
        )
        for entry in result['cases']:
            lines.extend(_case_rows(entry))
        lines.extend(_legend(result['environment']['device']))
    if 'whole_vs_slide' in result:
        lines.extend(_whole_vs_slide(result['whole_vs_slide']))
    if 'whole_image_scaling' in result:
        lines.extend(_scaling(result['whole_image_scaling']))
    return '\n'.join(lines)
