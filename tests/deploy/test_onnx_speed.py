"""tools/analysis/onnx_speed.py on the tiny segmentor: every row timed, the table printed."""

import pytest


@pytest.mark.slow
def test_prints_one_row_per_case_with_both_runtimes(tiny_segmentor, capsys):
    import onnx_speed

    config, _, _ = tiny_segmentor
    args = [
        '--configs', str(config), '--whole', '64x96', '--slide', '128x300',
        '--rounds', '1', '--warmup', '0', '--threads', '1', '--ort-levels', 'all', 'basic',
    ]  # fmt: skip
    assert onnx_speed.main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].startswith('| model | case | PyTorch s | ORT (all) s | ORT (basic) s |')
    whole, slide = lines[3], lines[4]
    assert '| whole 64x96 |' in whole
    assert '| slide 128x300, 4 windows of 128x128 |' in slide
    for row in (whole, slide):
        cells = [cell.strip() for cell in row.strip('|').split('|')]
        assert all(float(cell.split()[0]) > 0 for cell in cells[2:5])
        assert cells[5].endswith('x') and float(cells[6]) > 0


def test_format_table_ratio():
    from onnx_speed import format_table

    row = dict(
        model='m.py',
        case='whole 1x1',
        onnx_mib=1.5,
        medians={'pytorch': 2.0, 'ort-all': 1.0},
        minima={'pytorch': 1.5, 'ort-all': 0.5},
    )
    assert format_table([row], ['all']).splitlines()[2] == (
        '| m.py | whole 1x1 | 2.000 (min 1.500) | 1.000 (min 0.500) | 2.00x | 1.5 |'
    )
