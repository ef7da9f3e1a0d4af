"""Time the attention paths of MAEViT against each other at a real layer's shape.

Each path of ``mae_seg.models.layers.sdpa.ATTENTION_PATHS`` that runs on the device computes
the same relative-position-biased attention of one ViT layer (batch, heads, 1 + H*W tokens,
64 channels a head) from the same q, k, v and bias table; steps alternate (see
``benchmarking/measure.py``), forward only (``infer``) or forward and backward with the
table's gradient (``train``), under autocast where asked. Peak memory is CUDA's
``max_memory_allocated`` above the inputs. It is how the CUDA rule of
``choose_attention_path`` is decided: FlexAttention (``flex_table``, the bias read from its
table in the kernel) against SDPA with the gathered bias (``fused_sdpa``); and the
inference rule: ``blockwise_sdpa`` (the bias gathered per block of queries from index rows
computed on the fly) against ``fused_sdpa`` (the whole bias from a cached index). Inference
steps reuse one scratch workspace per path, as MAEViT's forward does.

    python tools/analysis/attention_paths.py --device cuda --arch vit-b vit-l --batch 2 4
    python tools/analysis/attention_paths.py --size 512 768 1024 --batch 1 --dtype fp32 \\
        --tasks infer --paths blockwise_sdpa   # the CPU inference rule
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarking.measure import time_interleaved  # noqa: E402

from mae_seg.models.layers.rel_pos_index import RelPosIndex
from mae_seg.models.layers.sdpa import ATTENTION_PATHS, AttentionWorkspace

HEADS = {'vit-b': 12, 'vit-l': 16}
HEAD_DIMS = 64
# Paths that have no backward on the CPU, or that are CPU-only.
CPU_ONLY = {'cpu_formula', 'cpu_table_recompute'}
CUDA_TRAINING_ONLY = {'flex_table'}
# Paths chosen only without autograd.
INFERENCE_ONLY = {'blockwise_sdpa'}


def paths_for(device: str, training: bool) -> list[str]:
    """The paths worth timing on ``device``."""
    names = sorted(n for n in ATTENTION_PATHS if not (training and n in INFERENCE_ONLY))
    if device == 'cuda':
        return [n for n in names if n not in CPU_ONLY]
    return [n for n in names if not (training and n in CUDA_TRAINING_ONLY)]


def make_step(
    path: str,
    batch: int,
    heads: int,
    grid: tuple[int, int],
    device: str,
    dtype: torch.dtype,
    training: bool,
):
    """A closure running one attention call (and its backward when ``training``)."""
    # The blockwise path computes its index rows as MAEViT's inference does; the others
    # read the whole index, built here once as MAEViT caches it.
    index = RelPosIndex(grid, device)
    tokens = index.num_tokens
    if path != 'blockwise_sdpa':
        index = index.dense()
    generator = torch.Generator(device=device).manual_seed(0)
    q, k, v = (
        torch.randn(batch, heads, tokens, HEAD_DIMS, device=device, generator=generator)
        for _ in range(3)
    )
    entries = (2 * grid[0] - 1) * (2 * grid[1] - 1) + 3
    table = torch.randn(heads, entries, device=device, generator=generator) * 0.1
    leaves = [t.requires_grad_(training) for t in (q, k, v, table)]
    autocast = torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32)
    function = ATTENTION_PATHS[path]
    workspace = None if training else AttentionWorkspace()

    def step():
        with autocast, torch.set_grad_enabled(training):
            query, key, value = (t.to(dtype) for t in leaves[:3])
            out = function(query, key, value, leaves[3].to(dtype), index, 0.0, workspace)
            if training:
                out.float().sum().backward()

    step.leaves = leaves
    return step


def peak_mib(step, device: str) -> float | None:
    if device != 'cuda':
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    step()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--arch', nargs='+', choices=sorted(HEADS), default=['vit-b'])
    parser.add_argument(
        '--size', type=int, nargs='+', default=[512], help='image sides (512: 32x32 tokens)'
    )
    parser.add_argument('--batch', type=int, nargs='+', default=[2])
    parser.add_argument(
        '--dtype',
        choices=['fp32', 'fp16', 'bf16'],
        nargs='+',
        default=['fp16'],
        help='autocast dtype (fp32: none)',
    )
    parser.add_argument(
        '--tasks', choices=['infer', 'train'], nargs='+', default=['infer', 'train']
    )
    parser.add_argument(
        '--paths', nargs='+', choices=sorted(ATTENTION_PATHS), help='(default: all for the device)'
    )
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--rounds', type=int, default=20)
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: torch sees no GPU on this machine')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from mae_seg.compat import setup_openmmlab

    setup_openmmlab()  # before mmengine reads a config or a checkpoint
    dtypes = dict(fp32=torch.float32, fp16=torch.float16, bf16=torch.bfloat16)
    sync = torch.cuda.synchronize if args.device == 'cuda' else (lambda: None)
    print(
        f'attention paths, {args.device}, torch {torch.__version__}, '
        f'{torch.get_num_threads()} threads; {HEAD_DIMS} dims a head; {args.warmup} warm-up '
        f'+ {args.rounds} timed calls, alternating'
    )
    print(f'{"case":<36}{"path":<22}{"median ms":>10}{"min ms":>9}{"vs fused":>9}{"peak MiB":>10}')
    for side, arch, batch, dtype_name, task in itertools.product(
        args.size, args.arch, args.batch, args.dtype, args.tasks
    ):
        grid, training = (side // 16, side // 16), task == 'train'
        case = f'{side}px {1 + grid[0] * grid[1]}tok {arch} b{batch} {dtype_name} {task}'
        names = paths_for(args.device, training)
        if args.paths:
            names = [n for n in names if n in args.paths or n == 'fused_sdpa']
        steps = {
            n: make_step(n, batch, HEADS[arch], grid, args.device, dtypes[dtype_name], training)
            for n in names
        }
        times, _ = time_interleaved(steps, args.warmup, args.rounds, sync)
        medians = {n: statistics.median(t) for n, t in times.items()}
        for name in names:
            peak = peak_mib(steps[name], args.device)
            ratio = medians['fused_sdpa'] / medians[name]
            print(
                f'{case:<36}{name:<22}{medians[name] * 1e3:>10.2f}'
                f'{min(times[name]) * 1e3:>9.2f}{ratio:>8.2f}x'
                f'{"" if peak is None else f"{peak:>10.0f}"}',
                flush=True,
            )
            case = ''
    print('vs fused: median of fused_sdpa / median of the path (above 1: faster).')
    return 0


if __name__ == '__main__':
    sys.exit(main())
