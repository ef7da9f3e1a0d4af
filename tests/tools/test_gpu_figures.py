"""tools/analysis/gpu_figures.sh: steps, their order, and failures, with a stand-in Python."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'tools' / 'analysis' / 'gpu_figures.sh'

# Answers the CUDA check, prints the command it was given, fails for the attention tool.
FAKE_PYTHON = """#!/usr/bin/env bash
echo "ran: $*"
[[ "$*" == *attention_paths.py* ]] && { echo 'attention failed' >&2; exit 3; }
exit 0
"""


def run(tmp_path, *steps):
    fake = tmp_path / 'python'
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    out = tmp_path / 'out'
    result = subprocess.run(
        ['bash', str(SCRIPT), str(out), *steps],
        env={'PATH': '/usr/bin:/bin', 'PY': str(fake), 'STEP_TIMEOUT': '20'},
        capture_output=True,
        text=True,
    )
    return result, out


def test_steps_run_in_order_and_a_failed_step_is_counted(tmp_path):
    result, out = run(tmp_path, 'tests', 'attention', 'vit-b', 'segmentor')
    assert result.returncode == 1, result.stderr
    report = (out / 'gpu_figures.txt').read_text()
    headers = [line for line in report.splitlines() if line.startswith('== ')]
    assert headers == [
        '== CUDA tests',
        '== attention paths',
        '== ViT-B backbone, batch 2 and 4',
        '== ViT-B UPerNet segmentor',
    ]
    assert 'ran: -m pytest -m cuda' in report
    assert '(step failed with exit status 3' in report
    vit_b = report.split('== ViT-B backbone')[1].split('== ViT-B UPerNet')[0]
    assert 'ran: tools/analysis/benchmark.py --device cuda --rounds 10 --warmup 3' in vit_b
    assert '--arch vit-b' in vit_b and '--compile' in vit_b
    assert 'attention failed' in (out / 'progress.txt').read_text()
    assert '1 step(s) failed' in result.stderr


def test_unknown_step_and_missing_folder_are_one_line_errors(tmp_path):
    result, out = run(tmp_path, 'vit-x')
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "gpu_figures: unknown step 'vit-x' (steps: env tests attention vit-b vit-b-train4 "
        'vit-l vit-l-train4 segmentor scaling)'
    ]
    no_folder = subprocess.run(['bash', str(SCRIPT)], capture_output=True, text=True)
    assert no_folder.returncode == 2 and no_folder.stderr.startswith('usage: gpu_figures.sh')
