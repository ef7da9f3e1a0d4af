"""The package's layers: each imports only those below it, with no cycle and no import of
mae_seg hidden inside a function (tools/analysis/import_graph.py prints the graph)."""

import subprocess
import sys
from pathlib import Path

import import_graph

ROOT = Path(__file__).resolve().parents[1]


def test_layers_import_only_downwards():
    assert import_graph.problems(import_graph.build_graph(ROOT)) == []


def test_an_upward_import_a_cycle_and_a_hidden_import_are_found(tmp_path):
    package = tmp_path / 'mae_seg'
    for name, text in {
        '__init__.py': 'from .models import A\n',
        'io/__init__.py': 'from ..models import A\n',  # upward: io is below models
        'models/__init__.py': 'from ..io import B\nA = 1\n',
        'runner/__init__.py': 'def f():\n    from ..models import A\n',
        'mystery.py': '',
    }.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    found = import_graph.problems(import_graph.build_graph(tmp_path))
    assert 'cycle: io <-> models' in found
    assert any(line.startswith('io imports models, not a lower layer') for line in found)
    assert 'mae_seg.runner:2 imports mae_seg.models in a function' in found
    assert any(line.startswith('mystery: not in the layer order') for line in found)


def test_the_tool_prints_lines_per_package_and_exits_1_on_problems(tmp_path):
    tool = ROOT / 'tools/analysis/import_graph.py'
    result = subprocess.run([sys.executable, tool, '--check'], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    assert 'lines per package' in result.stdout and 'problems: 0' in result.stdout
    (tmp_path / 'mae_seg/io').mkdir(parents=True)
    (tmp_path / 'mae_seg/io/__init__.py').write_text('from ..runner import x\n')
    (tmp_path / 'mae_seg/runner').mkdir()
    (tmp_path / 'mae_seg/runner/__init__.py').write_text('x = 1\n')
    args = [sys.executable, tool, '--root', tmp_path, '--check']
    result = subprocess.run(args, capture_output=True, text=True)
    assert result.returncode == 1 and 'io imports runner' in result.stdout
    missing = subprocess.run(
        [sys.executable, tool, '--root', tmp_path / 'none'], text=True, capture_output=True
    )
    assert missing.returncode == 2 and missing.stderr.count('\n') == 1
