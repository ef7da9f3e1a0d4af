"""The CPU/GPU benchmark of two checkouts side by side in one run: did a change move a figure?

Usage::

    python tools/analysis/compare_checkouts.py BEFORE_DIR AFTER_DIR [--repeats 2] \\
        [-- benchmark.py options, e.g. --cases 'infer-*' --rounds 3]

Runs ``tools/analysis/benchmark.py`` of each checkout, with that checkout's ``mae_seg`` first
on the path, alternately (before, after, before, after, ...), so both meet the same machine
load; then prints, per case and model, the median step time of each checkout (the median of
the repeats' medians), after / before, and each checkout's speed-up over mmseg's ``MAE``
measured in the same process, and the peak memory of a step (MiB, when measured).
``BEFORE_DIR`` is typically a worktree of the last release
(``git worktree add /tmp/before v0.2.0``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROW = '{:<15} {:<10} {:>9} {:>9} {:>7} {:>9} {:>9} {:>8} {:>8}'


def run_checkout(checkout: Path, benchmark_args: list[str], out: Path) -> dict:
    """One benchmark run of ``checkout``; its JSON result."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(checkout), os.environ.get('PYTHONPATH', '')])
    )
    command = [sys.executable, str(checkout / 'tools/analysis/benchmark.py'), *benchmark_args]
    command += ['--json', str(out)]
    finished = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True)
    if finished.returncode != 0:
        lines = (finished.stderr or finished.stdout).strip().splitlines() or ['no output']
        raise RuntimeError(f'benchmark of {checkout} failed: {lines[-1]}')
    return json.loads(out.read_text())


def medians(results: list[dict]) -> dict[tuple[str, str], dict]:
    """(case, variant) -> median of the runs' median times, speed-ups and peak MiB (None
    when memory was not measured)."""
    collected: dict[tuple[str, str], dict[str, list[float]]] = {}
    for result in results:
        for entry in result['cases']:
            for variant, stats in entry['variants'].items():
                slot = collected.setdefault(
                    (entry['case'], variant), {'time': [], 'speedup': [], 'memory': []}
                )
                slot['time'].append(stats['median'])
                slot['speedup'].append(stats['speedup'])
                if stats.get('memory'):
                    slot['memory'].append(stats['memory']['net_mb'])
    return {
        key: {name: statistics.median(values) if values else None for name, values in slot.items()}
        for key, slot in collected.items()
    }


def compare(before: list[dict], after: list[dict]) -> list[str]:
    """The side-by-side table."""
    old, new = medians(before), medians(after)
    lines = [
        ROW.format(
            'case', 'model', 'before s', 'after s', 'after/', 'speed-up', 'speed-up', 'MiB', 'MiB'
        ),
        ROW.format('', '', '', '', 'before', 'before', 'after', 'before', 'after'),
    ]
    for key in old:
        if key not in new:
            continue
        case, variant = key
        ratio = new[key]['time'] / old[key]['time']
        lines.append(
            ROW.format(
                case,
                variant,
                f'{old[key]["time"]:.3f}',
                f'{new[key]["time"]:.3f}',
                f'{ratio:.3f}',
                f'{old[key]["speedup"]:.2f}x',
                f'{new[key]["speedup"]:.2f}x',
                '-' if old[key]['memory'] is None else f'{old[key]["memory"]:.0f}',
                '-' if new[key]['memory'] is None else f'{new[key]["memory"]:.0f}',
            )
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, passed = (
        (argv[: argv.index('--')], argv[argv.index('--') + 1 :]) if '--' in argv else (argv, [])
    )
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        usage='%(prog)s BEFORE AFTER [--repeats N] [-- benchmark.py options]',
        epilog="options after '--' go to tools/analysis/benchmark.py of both checkouts, "
        "e.g. -- --cases 'infer-*' --rounds 3",
    )
    parser.add_argument('before', type=Path, help='checkout before the change')
    parser.add_argument('after', type=Path, help='checkout after the change')
    parser.add_argument('--repeats', type=int, default=2, help='benchmark runs per checkout (2)')
    parser.add_argument('--keep-json', type=Path, help="folder for each run's JSON result")
    args = parser.parse_args(ours)
    for checkout in (args.before, args.after):
        if not (checkout / 'tools/analysis/benchmark.py').is_file():
            print(
                f'compare_checkouts.py: error: {checkout} is not a mae_seg checkout '
                '(no tools/analysis/benchmark.py)',
                file=sys.stderr,
            )
            return 2
    results: dict[str, list[dict]] = {'before': [], 'after': []}
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep_json or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for repeat in range(args.repeats):
            for name, checkout in (('before', args.before), ('after', args.after)):
                print(
                    f'run {repeat + 1}/{args.repeats}: {name} ({checkout})',
                    file=sys.stderr,
                    flush=True,
                )
                out = folder / f'{name}{repeat}.json'
                try:
                    results[name].append(run_checkout(checkout.resolve(), passed, out))
                except RuntimeError as error:
                    print(f'compare_checkouts.py: error: {error}', file=sys.stderr)
                    return 2
    print('\n'.join(compare(results['before'], results['after'])))
    return 0


if __name__ == '__main__':
    sys.exit(main())
