"""tools/analysis/plot_curves.py: one PNG and one line, or one error line and exit status 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from plot_curves import main

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / 'tools/analysis/plot_curves.py'


def write_run(work_dir, timestamp, steps, validations=()):
    path = work_dir / timestamp / 'vis_data' / 'scalars.json'
    path.parent.mkdir(parents=True)
    lines = [
        {'lr': 1e-4, 'loss': 2.0 / step, 'decode.loss_ce': 1.0 / step, 'iter': step, 'step': step}
        for step in steps
    ]
    lines += [
        {'aAcc': 90.0, 'mIoU': miou, 'mAcc': 80.0, 'step': step} for step, miou in validations
    ]
    path.write_text(''.join(json.dumps(line) + '\n' for line in lines))
    return path


def run_tool(*args):
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)], cwd=ROOT, capture_output=True, text=True
    )


def assert_one_error_line(err, out=''):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith('plot_curves.py: error: ')
    assert 'Traceback' not in err + out
    return lines[0]


def test_resumed_run_to_one_png_and_one_line(tmp_path):
    write_run(tmp_path, '20260101_100000', range(10, 70, 10), [(40, 30.0)])
    write_run(tmp_path, '20260101_110000', range(50, 110, 10), [(80, 45.0), (100, 51.234)])
    result = run_tool(tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'Traceback' not in result.stderr
    assert result.stdout.splitlines() == [
        f'wrote {tmp_path / "curves.png"}: loss (loss, decode.loss_ce), lr and val mIoU over '
        'iterations 10-100 from 2 runs; 3 validations, last mIoU 51.23 at iteration 100'
    ]
    png = (tmp_path / 'curves.png').read_bytes()
    assert png.startswith(b'\x89PNG\r\n\x1a\n') and 20_000 < len(png) < 500_000
    with Image.open(tmp_path / 'curves.png') as image:
        assert image.size == (1500, 400)


def test_corrupt_line_is_one_error_line_and_no_png(tmp_path):
    log = write_run(tmp_path, '20260101_100000', range(1, 4))
    log.write_text(log.read_text() + '{"lr": 0.0001, "lo')
    result = run_tool(tmp_path, '--out', tmp_path / 'out' / 'c.png')
    assert result.returncode == 2
    line = assert_one_error_line(result.stderr, result.stdout)
    assert line == (
        f'plot_curves.py: error: line 4 of {log} is not JSON (\'{{"lr": 0.0001, "lo\'); remove '
        f'line 4 of {log} (a run killed while writing leaves a partial line)'
    )
    assert not (tmp_path / 'out').exists()


def test_run_without_validation_says_so(tmp_path, capsys):
    write_run(tmp_path, '20260101_100000', range(1, 4))
    out = tmp_path / 'plots' / 'run.png'
    assert main([str(tmp_path), '--out', str(out)]) == 0
    assert capsys.readouterr().out == (
        f'wrote {out}: loss (loss, decode.loss_ce), lr over iterations 1-3 from 1 run; '
        'no validation in the log, so no mIoU panel\n'
    )
    with Image.open(out) as image:
        assert image.format == 'PNG' and image.size == (1000, 400)


@pytest.mark.parametrize(
    ('make', 'args', 'expected'),
    [
        (None, [], '{work_dir} does not exist; give the --work-dir of a training run'),
        ('empty', [], '{work_dir} has no <timestamp>/vis_data/scalars.json; give the --work-dir'),
        ('run', ['--out', '{work_dir}'], 'output {work_dir} is not a .png file name'),
        ('run', ['--out', '{work_dir}/c.jpg'], 'output {work_dir}/c.jpg is not a .png file name'),
        ('run', ['--metric', 'mDice'], "have no 'mDice' (they have aAcc, mAcc, mIoU)"),
    ],
    ids=['missing', 'no-scalars', 'out-is-dir', 'out-not-png', 'metric'],
)
def test_bad_input_is_one_line_and_no_png(tmp_path, capsys, make, args, expected):
    work_dir = tmp_path / 'work'
    if make == 'empty':
        (work_dir / '20260101_100000').mkdir(parents=True)
    elif make == 'run':
        write_run(work_dir, '20260101_100000', range(1, 4), [(3, 50.0)])
    argv = [str(work_dir), *(arg.format(work_dir=work_dir) for arg in args)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert expected.format(work_dir=work_dir) in assert_one_error_line(captured.err, captured.out)
    assert captured.out == ''
    assert list(tmp_path.rglob('*.png')) == [] and list(tmp_path.rglob('*.part')) == []
