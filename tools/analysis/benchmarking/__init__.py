"""Speed and memory of MAEViT against mmseg's MAE, measured side by side.

``tools/analysis/benchmark.py`` is the command line and this package sits beside it (tools,
not library: nothing in ``mae_seg`` needs it); :func:`run_benchmark` does the work
and returns a JSON-ready dict, :func:`format_report` turns it into a table.
"""

from .cases import BenchmarkError, Case
from .report import format_report
from .run import BenchmarkOptions, run_benchmark
from .workloads import ARCHS

__all__ = ['ARCHS', 'BenchmarkError', 'BenchmarkOptions', 'Case', 'format_report', 'run_benchmark']
