"""Redraw the ratio chart of a saved benchmark run: ``benchmark.py --json`` -> a PNG.

Prints the run's table too, so the chart and the figures quoted from it can be checked
against each other.

Example:
    python tools/analysis/benchmark.py --rounds 5 --json bench.json
    python tools/analysis/plot_benchmark.py bench.json docs/images/benchmark_ratios.png
"""

from __future__ import annotations

import argparse
import sys

from benchmarking import BenchmarkError, format_report
from benchmarking.ratio_plot import load_result, plot_ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='plot_benchmark.py', description=__doc__.splitlines()[0])
    parser.add_argument('json', help='a result written by tools/analysis/benchmark.py --json')
    parser.add_argument('png', help='the chart to write (*.png)')
    args = parser.parse_args(argv)
    try:
        if not args.png.endswith('.png'):
            raise BenchmarkError(f'{args.png}: the chart is a PNG, name it *.png')
        result = load_result(args.json)
        plot_ratios(result, args.png)
    except BenchmarkError as error:
        parser.error(str(error))
    print(format_report(result))
    print(f'ratio plot written to {args.png}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
