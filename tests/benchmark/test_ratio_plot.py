"""The ratio chart of a benchmark result: from a run, and redrawn from its saved JSON."""

import json

import pytest
from benchmarking import BenchmarkError, BenchmarkOptions, run_benchmark
from benchmarking.ratio_plot import load_result, ratio_figure

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def stats(speedup, memory_ratio=None):
    median = 1.0 / speedup
    entry = dict(
        times=[median],
        median=median,
        min=median,
        speedup=speedup,
        speedup_of_min=speedup,
        gflops=speedup,
        gemm_share=None,
    )
    if memory_ratio is not None:
        entry.update(memory=dict(net_mb=100 * memory_ratio), memory_ratio=memory_ratio)
    return entry


def small_result(memory=True):
    """Two cases as ``benchmark.py --json`` writes them, with made-up ratios."""
    mem = (lambda ratio: ratio) if memory else (lambda ratio: None)
    return dict(
        options=dict(arch='vit-b', mode='backbone', image_size=[64, 64], warmup=1, rounds=2),
        environment=dict(device='cpu', threads=2, torch='2.x'),
        arch=dict(embed_dims=64, tokens=17),
        cases=[
            dict(
                case='infer-b1-fp32',
                gemm=None,
                variants=dict(mmseg=stats(1.0, mem(1.0)), ours=stats(1.75, mem(0.5))),
            ),
            dict(
                case='train-b2-fp32',
                gemm=None,
                variants=dict(
                    mmseg=stats(1.0, mem(1.0)),
                    ours=stats(1.25, mem(0.75)),
                    ours_cp=stats(0.9, mem(0.4)),
                ),
            ),
        ],
    )


def bars(axis):
    """(label, centre x, height) of every bar of an axis."""
    found = []
    for container in axis.containers:
        for patch in container.patches:
            centre = patch.get_x() + patch.get_width() / 2
            found.append((container.get_label(), round(centre, 3), patch.get_height()))
    return found


def test_bars_are_the_speed_ups_and_memory_ratios_of_each_case():
    figure = ratio_figure(small_result())
    speed, memory = figure.axes
    # Two models side by side over each case: MAEViT left of MAEViT with_cp.
    assert bars(speed) == [
        ('MAEViT', -0.2, 1.75),
        ('MAEViT', 0.8, 1.25),
        ('MAEViT with_cp', 1.2, 0.9),
    ]
    assert bars(memory) == [
        ('MAEViT', -0.2, 0.5),
        ('MAEViT', 0.8, 0.75),
        ('MAEViT with_cp', 1.2, 0.4),
    ]
    assert [tick.get_text() for tick in speed.get_xticklabels()] == [
        'infer-b1-fp32',
        'train-b2-fp32',
    ]
    assert '1.75x' in [text.get_text() for text in speed.texts]
    assert 'torch 2.x' in figure.get_suptitle()
    footer = ' '.join(text.get_text() for text in figure.texts)
    assert 'peak resident set' in footer and 'amp: bf16 autocast' in footer  # a CPU run
    assert len(ratio_figure(small_result(memory=False)).axes) == 1  # no memory, no panel


def test_chart_redrawn_from_a_saved_json(load_tool, tmp_path, capsys):
    saved = tmp_path / 'bench.json'
    saved.write_text(json.dumps(small_result()))
    chart = tmp_path / 'charts' / 'ratios.png'
    assert load_tool('analysis/plot_benchmark.py').main([str(saved), str(chart)]) == 0
    assert chart.read_bytes()[:8] == PNG_MAGIC
    printed = capsys.readouterr().out
    assert "infer-b1-fp32   mmseg's MAE" in printed  # the run's table
    assert 'ratio plot written to' in printed
    assert load_result(str(saved))['cases'][0]['case'] == 'infer-b1-fp32'


@pytest.mark.parametrize(
    'content, message',
    [
        (None, 'cannot read it'),
        ('{"cases": [', 'not JSON'),
        ('[1, 2]', 'not a result of tools/analysis/benchmark.py --json'),
        ('{"options": {}, "environment": {}, "cases": []}', 'no timed case to chart'),
        (
            '{"options": {}, "environment": {}, "cases": [{"case": "x", "gemm": null, '
            '"variants": {}}]}',
            "case x lacks mmseg's MAE",
        ),
        (
            '{"options": {}, "environment": {}, "cases": [{"case": "x", "gemm": null, '
            '"variants": {"mmseg": {"median": 1, "min": 1, "speedup": 1}}}]}',
            'case x, mmseg: no gemm_share, gflops',
        ),
    ],
)
def test_bad_json_is_one_line_and_exit_2(load_tool, tmp_path, capsys, content, message):
    saved = tmp_path / 'bench.json'
    if content is not None:
        saved.write_text(content)
    chart = tmp_path / 'ratios.png'
    with pytest.raises(SystemExit) as exit_info:
        load_tool('analysis/plot_benchmark.py').main([str(saved), str(chart)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith('plot_benchmark.py: error: ') and message in error
    assert not chart.exists()


def test_benchmark_run_writes_the_ratio_plot(tmp_path):
    chart = tmp_path / 'ratios.png'
    options = BenchmarkOptions(
        arch=dict(embed_dims=64, num_layers=2, num_heads=2, out_indices=[0, 1]),
        image_size=(32, 32),
        rounds=1,
        memory=False,
        cases=['infer-b1-fp32'],
        ratio_plot=str(chart),
    )
    result = run_benchmark(options, log=lambda line: None)
    assert chart.read_bytes()[:8] == PNG_MAGIC
    speedup = result['cases'][0]['variants']['ours']['speedup']
    assert [bar[2] for bar in bars(ratio_figure(result).axes[0])] == [speedup]


@pytest.mark.parametrize(
    'changes, message',
    [
        (dict(ratio_plot='ratios.svg'), '--ratio-plot ratios.svg: the plot is a PNG'),
        (
            dict(ratio_plot='ratios.png', cases=['whole-image-scaling']),
            '--ratio-plot charts the timed cases',
        ),
    ],
)
def test_ratio_plot_options_are_checked_before_measuring(changes, message):
    options = BenchmarkOptions(image_size=(32, 32), rounds=1, memory=False, **changes)
    with pytest.raises(BenchmarkError, match=message):
        run_benchmark(options, log=lambda line: None)
