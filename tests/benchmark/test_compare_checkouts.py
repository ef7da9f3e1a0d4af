"""compare_checkouts.py: medians over repeats, after/before, and one-line errors."""

import subprocess
import sys
from pathlib import Path

import compare_checkouts

ROOT = Path(__file__).resolve().parents[2]


def result(times: dict[str, float], speedup: float, memory: float | None = None) -> dict:
    variants = {
        variant: {'median': t, 'speedup': speedup, 'memory': memory and {'net_mb': memory}}
        for variant, t in times.items()
    }
    return {'cases': [{'case': 'infer-b1-fp32', 'variants': variants}]}


def test_medians_of_repeats_and_ratio():
    before = [
        result({'mae_vit': 1.0}, 1.5, 900.0),
        result({'mae_vit': 3.0}, 1.7, 1000.0),
        result({'mae_vit': 2.0}, 1.6, 950.0),
    ]
    after = [result({'mae_vit': 2.2}, 1.4, 940.0), result({'mae_vit': 2.0}, 1.5, 960.0)]
    header, _, row = compare_checkouts.compare(before, after)
    assert header.split()[:2] == ['case', 'model']
    expected = ['infer-b1-fp32', 'mae_vit', '2.000', '2.100', '1.050', '1.60x', '1.45x']
    assert row.split() == expected + ['950', '950']
    no_memory = compare_checkouts.compare([result({'x': 1.0}, 1.0)], [result({'x': 1.0}, 1.0)])
    assert no_memory[-1].split()[-2:] == ['-', '-']


def test_a_directory_that_is_no_checkout_is_one_line(tmp_path):
    tool = ROOT / 'tools/analysis/compare_checkouts.py'
    finished = subprocess.run(
        [sys.executable, tool, tmp_path, ROOT], capture_output=True, text=True
    )
    assert finished.returncode == 2
    assert finished.stderr.strip().splitlines() == [
        f'compare_checkouts.py: error: {tmp_path} is not a mae_seg checkout '
        '(no tools/analysis/benchmark.py)'
    ]
