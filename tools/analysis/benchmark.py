"""Speed and memory of MAEViT against mmseg's MAE, with the same weights, side by side.

Examples:
    python tools/analysis/benchmark.py                       # ViT-B/16 backbone, 512x512, CPU
    python tools/analysis/benchmark.py --cases 'infer-*' --rounds 5 --json bench.json
    python tools/analysis/benchmark.py --json bench.json --ratio-plot ratios.png
    python tools/analysis/benchmark.py --mode segmentor      # UPerNet + whole vs slide
    python tools/analysis/benchmark.py --device cuda --arch vit-l
    python tools/analysis/benchmark.py --mode segmentor --cases whole-vs-slide \
        --checkpoint upernet_mae.pth --image ADE_val_00000001.jpg
    python tools/analysis/benchmark.py --cases whole-image-scaling --rounds 1 \
        --plot docs/images/whole_image_scaling.png   # 512x512 to 1024x2048, both paths
"""

from __future__ import annotations

import argparse
import json
import sys

from benchmarking import ARCHS, BenchmarkError, BenchmarkOptions, format_report, run_benchmark

CONFIGS = {
    'vit-b': 'configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py',
    'vit-l': 'configs/mae/mae-large_upernet_8xb2-amp-160k_ade20k-512x512.py',
}


def size(text: str) -> tuple[int, int]:
    """``512`` or ``512x683`` -> ``(H, W)``."""
    parts = text.lower().split('x')
    if len(parts) not in (1, 2) or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f'{text!r} is not a size such as 512 or 512x683')
    sides = [int(p) for p in parts]
    return (sides[0], sides[-1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--mode', choices=['backbone', 'segmentor'], default='backbone')
    parser.add_argument('--arch', choices=list(ARCHS), default='vit-b')
    parser.add_argument('--size', type=size, default=(512, 512), help='H or HxW (default 512)')
    parser.add_argument(
        '--batch', type=int, nargs='+', default=[1, 2], help='inference batch sizes (1 2)'
    )
    parser.add_argument('--train-batch', type=int, default=2, help='training batch size (2)')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--warmup', type=int, default=1, help='untimed steps per model (1)')
    parser.add_argument('--rounds', type=int, default=3, help='timed steps per model (3)')
    parser.add_argument(
        '--cases',
        nargs='+',
        default=[],
        help="case names or patterns, e.g. 'infer-*' train-b2-fp32 whole-vs-slide (all)",
    )
    parser.add_argument(
        '--memory',
        action=argparse.BooleanOptionalAction,
        default=True,
        help='peak memory, one child process per case and model (on)',
    )
    parser.add_argument('--config', help='segmentor config (default: the --arch UPerNet config)')
    parser.add_argument(
        '--whole-vs-slide-size', type=size, default=(512, 683), help='segmentor mode (512x683)'
    )
    parser.add_argument(
        '--checkpoint', help='trained segmentor weights for both models (segmentor mode)'
    )
    parser.add_argument(
        '--image', help='image for whole-vs-slide, resized to --whole-vs-slide-size (random)'
    )
    parser.add_argument('--threads', type=int, help='torch.set_num_threads (default: torch)')
    parser.add_argument(
        '--compile',
        nargs='?',
        const='inductor',
        metavar='BACKEND',
        help='also time MAEViT under torch.compile (inductor; backbone mode; warm-up compiles)',
    )
    parser.add_argument(
        '--scaling-sizes',
        type=size,
        nargs='+',
        default=[(512, 512), (1024, 1024), (1024, 2048)],
        help='image sizes of --cases whole-image-scaling (512 1024 1024x2048)',
    )
    parser.add_argument('--plot', metavar='PNG', help='plot of --cases whole-image-scaling')
    parser.add_argument(
        '--ratio-plot',
        metavar='PNG',
        help="bar chart of the cases' speed-ups and memory ratios over mmseg's MAE",
    )
    parser.add_argument('--json', metavar='PATH', help="write the results as JSON ('-': stdout)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mae_seg.compat import setup_openmmlab

    setup_openmmlab()  # before mmengine reads a config or a checkpoint
    options = BenchmarkOptions(
        mode=args.mode,
        arch=args.arch if args.mode == 'backbone' else None,
        image_size=args.size,
        device=args.device,
        infer_batches=tuple(args.batch),
        train_batch=args.train_batch,
        cases=args.cases,
        warmup=args.warmup,
        rounds=args.rounds,
        memory=args.memory,
        config=args.config or (CONFIGS[args.arch] if args.mode == 'segmentor' else None),
        whole_vs_slide_size=args.whole_vs_slide_size,
        checkpoint=args.checkpoint,
        image=args.image,
        threads=args.threads,
        compile=args.compile,
        scaling_sizes=tuple(args.scaling_sizes),
        plot=args.plot,
        ratio_plot=args.ratio_plot,
    )
    try:
        result = run_benchmark(options, log=lambda line: print(line, file=sys.stderr, flush=True))
    except BenchmarkError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    report = format_report(result)
    if args.json == '-':
        print(json.dumps(result, indent=2))
        print(report, file=sys.stderr)
    else:
        print(report)
        if args.json:
            with open(args.json, 'w') as file:
                json.dump(result, file, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
