"""The benchmark's machinery on tiny models: structure of the result, ratios, the CLI."""

import dataclasses
import json
import statistics

import cv2
import numpy as np
import pytest
import torch
from benchmarking import BenchmarkError, BenchmarkOptions, format_report, run_benchmark
from benchmarking.workloads import WorkloadSpec, build_workload

TINY_ARCH = dict(embed_dims=64, num_layers=2, num_heads=2, out_indices=[0, 1])

TINY_SEGMENTOR = """
norm_cfg = dict(type='BN', requires_grad=True)
head = dict(
    in_index=2, dropout_ratio=0.1, num_classes=5, norm_cfg=norm_cfg, align_corners=False
)
model = dict(
    type='EncoderDecoder',
    backbone=dict(
        type='MAE', img_size=(64, 64), embed_dims=64, num_layers=4, num_heads=2,
        out_indices=(0, 1, 2, 3), norm_cfg=dict(type='LN', eps=1e-6),
    ),
    neck=dict(type='Feature2Pyramid', embed_dim=64, rescales=[4, 2, 1, 0.5]),
    decode_head=dict(
        type='UPerHead', in_channels=[64] * 4, in_index=[0, 1, 2, 3], pool_scales=(1, 2),
        channels=16, dropout_ratio=0.1, num_classes=5, norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0),
    ),
    auxiliary_head=dict(
        type='FCNHead', in_channels=64, channels=8, num_convs=1, concat_input=False,
        loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4), **head,
    ),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(64, 64), stride=(43, 43)),
)
"""


def rss_mb():
    with open('/proc/self/status') as status:
        line = next(line for line in status if line.startswith('VmRSS:'))
    return int(line.split()[1]) / 1024


def tiny_options(**kwargs):
    defaults = dict(
        arch=TINY_ARCH, image_size=(32, 32), warmup=1, rounds=2, memory=False, cases=['*-fp32']
    )
    return BenchmarkOptions(**{**defaults, **kwargs})


def check_ratios(entry, rounds, gemm=True):
    reference = entry['variants']['mmseg']
    if gemm:
        gemm = entry['gemm']
        assert len(gemm['times']) == rounds
        median = statistics.median(gemm['times'])
        assert gemm['gflops'] == pytest.approx(gemm['flops'] / median / 1e9)
    else:
        assert entry['gemm'] is None
    for stats in entry['variants'].values():
        assert len(stats['times']) == rounds
        assert stats['median'] == statistics.median(stats['times'])
        assert stats['min'] == min(stats['times'])
        assert stats['speedup'] == pytest.approx(reference['median'] / stats['median'])
        assert stats['speedup_of_min'] == pytest.approx(reference['min'] / stats['min'])
        assert stats['gflops'] == pytest.approx(entry['flops'] / stats['median'] / 1e9)
        if gemm:
            assert stats['gemm_share'] == pytest.approx(stats['gflops'] / gemm['gflops'])


def test_backbone_result_structure_and_ratios():
    result = run_benchmark(tiny_options(), log=lambda line: None)
    names = [e['case'] for e in result['cases']]
    assert names == ['infer-b1-fp32', 'infer-b2-fp32', 'train-b2-fp32']
    assert result['environment']['threads'] >= 1
    assert result['arch'] == dict(embed_dims=64, ffn_dims=256, tokens=5, layers=2)
    for entry in result['cases']:
        expected = ['mmseg', 'ours', 'ours_cp'] if entry['task'] == 'train' else ['mmseg', 'ours']
        assert list(entry['variants']) == expected
        assert entry['flops'] > 0
        check_ratios(entry, rounds=2)
    train = result['cases'][-1]
    assert train['flops'] > 2 * result['cases'][1]['flops']  # backward counted
    json.dumps(result)
    report = format_report(result)
    for name in ('infer-b1-fp32', 'train-b2-fp32', "mmseg's MAE", 'MAEViT with_cp', 'GEMM'):
        assert name in report


def test_compiled_maevit_is_timed_beside_the_others(monkeypatch):
    compiled_calls = []
    real_compile = torch.compile

    def recording_compile(model, **kwargs):
        compiled_calls.append((type(model).__name__, kwargs))
        return real_compile(model, **kwargs)

    monkeypatch.setattr(torch, 'compile', recording_compile)
    options = tiny_options(cases=['infer-b1-fp32', 'train-b2-fp32'], compile='aot_eager')
    result = run_benchmark(options, log=lambda line: None)
    assert compiled_calls == [('MAEViT', dict(backend='aot_eager'))]  # once for the run
    infer, train = result['cases']
    assert list(infer['variants']) == ['mmseg', 'ours', 'ours_compiled']
    assert list(train['variants']) == ['mmseg', 'ours', 'ours_cp', 'ours_compiled']
    for entry in result['cases']:
        check_ratios(entry, rounds=2)
    assert 'MAEViT compiled' in format_report(result)
    with pytest.raises(BenchmarkError, match='--compile is for --mode backbone'):
        run_benchmark(tiny_options(mode='segmentor', compile='inductor'), log=lambda x: None)


def test_a_compiled_step_runs_without_with_cp_after_a_with_cp_step():
    from benchmarking.cases import Case
    from benchmarking.steps import make_optimizer, training_step

    workload = build_workload(WorkloadSpec('backbone', arch=TINY_ARCH, image_size=(32, 32)))
    model = workload.build('ours')
    compiled = torch.compile(model, backend='aot_eager')
    optimizer = make_optimizer(model)
    case = Case('train', 2, 'fp32')
    training_step(workload, model, optimizer, case, with_cp=True)()
    assert model.with_cp
    training_step(workload, compiled, optimizer, case, with_cp=False)()
    assert not model.with_cp


def test_peak_memory_comes_from_child_processes():
    # 800 MB held here must not show in the children (ru_maxrss of a forked and exec'd
    # child would report this process's resident set as its own peak).
    ballast = torch.ones(200_000_000)
    parent_rss = rss_mb()
    result = run_benchmark(tiny_options(cases=['infer-b1-fp32'], memory=True), log=lambda x: None)
    del ballast
    variants = result['cases'][0]['variants']
    for stats in variants.values():
        memory = stats['memory']
        assert 0 < memory['base_mb'] <= memory['peak_mb'] < parent_rss - 400
        assert memory['net_mb'] == pytest.approx(memory['peak_mb'] - memory['base_mb'])
        ratio = memory['net_mb'] / variants['mmseg']['memory']['net_mb']
        assert stats['memory_ratio'] == pytest.approx(ratio)
    assert 'peak MiB' in format_report(result)


@pytest.fixture
def segmentor_config(tmp_path):
    """A tiny UPerNet config file; its path."""
    config = tmp_path / 'tiny_upernet.py'
    config.write_text(TINY_SEGMENTOR)
    return str(config)


def test_segmentor_mode_and_whole_vs_slide(segmentor_config):
    options = tiny_options(
        mode='segmentor',
        arch=None,
        image_size=(64, 64),
        config=segmentor_config,
        cases=['infer-b1-fp32', 'train-b2-amp', 'whole-vs-slide'],
        whole_vs_slide_size=(64, 96),
    )
    result = run_benchmark(options, log=lambda line: None)
    assert [e['case'] for e in result['cases']] == ['infer-b1-fp32', 'train-b2-amp']
    for entry in result['cases']:
        check_ratios(entry, rounds=2, gemm=False)
    comparison = result['whole_vs_slide']
    assert (comparison['crop'], comparison['stride']) == ([64, 64], [43, 43])
    assert set(comparison['ways']) == {'slide_mmseg', 'slide_ours', 'whole_ours'}
    slide = comparison['ways']['slide_mmseg']['median']
    for stats in comparison['ways'].values():
        assert len(stats['times']) == 2
        assert stats['speedup'] == pytest.approx(slide / stats['median'])
    # Same weights, same windows: the two slide predictions agree (ties aside).
    assert comparison['slide_ours_vs_mmseg_pixel_agreement'] > 0.999
    assert 0.0 <= comparison['whole_vs_slide_pixel_agreement'] <= 1.0
    assert 'whole image vs sliding windows: 64x96' in format_report(result)


def test_whole_vs_slide_with_trained_weights_and_an_image(tmp_path, segmentor_config):
    options = tiny_options(
        mode='segmentor', arch=None, image_size=(64, 64), config=segmentor_config, memory=False
    )
    workload = build_workload(
        WorkloadSpec(mode='segmentor', image_size=(64, 64), config=segmentor_config)
    )
    trained = workload.build('ours')
    with torch.no_grad():
        # A head that says class 3 everywhere: only these weights predict one class.
        trained.decode_head.conv_seg.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 1e4, 0.0]))
    checkpoint = tmp_path / 'trained.pth'
    torch.save(dict(meta=dict(iter=1), state_dict=trained.state_dict()), checkpoint)
    image = tmp_path / 'image.png'
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (90, 120, 3), np.uint8))
    options = dataclasses.replace(
        options,
        cases=['whole-vs-slide'],
        whole_vs_slide_size=(64, 96),
        checkpoint=str(checkpoint),
        image=str(image),
    )
    result = run_benchmark(options, log=lambda line: None)
    comparison = result['whole_vs_slide']
    assert comparison['classes_predicted'] == 1
    assert comparison['whole_vs_slide_pixel_agreement'] == 1.0
    assert comparison['slide_ours_vs_mmseg_pixel_agreement'] == 1.0
    report = format_report(result)
    assert f'weights: {checkpoint}; image: {image}' in report


def test_image_inputs_are_resized_and_normalised_as_the_config_says(tmp_path):
    config = tmp_path / 'tiny_upernet.py'
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    config.write_text(
        TINY_SEGMENTOR
        + f"model['data_preprocessor'] = dict(mean={mean}, std={std}, bgr_to_rgb=True)\n"
    )
    image = tmp_path / 'image.png'
    bgr = np.random.default_rng(0).integers(0, 255, (90, 120, 3), np.uint8)
    cv2.imwrite(str(image), bgr)
    workload = build_workload(
        WorkloadSpec(mode='segmentor', image_size=(64, 64), config=str(config))
    )
    images, metas, _ = workload.image_inputs(str(image), (64, 96))
    rgb = cv2.resize(bgr, (96, 64), interpolation=cv2.INTER_LINEAR)[..., ::-1]
    expected = (rgb.astype(np.float32) - mean) / std
    assert images.shape == (1, 3, 64, 96)
    torch.testing.assert_close(images[0], torch.from_numpy(expected.transpose(2, 0, 1)).float())
    assert metas == [dict(img_shape=(64, 96), ori_shape=(64, 96), pad_shape=(64, 96))]


def test_whole_vs_slide_inputs_are_checked(tmp_path, segmentor_config):
    options = tiny_options(
        mode='segmentor',
        arch=None,
        image_size=(64, 64),
        config=segmentor_config,
        cases=['whole-vs-slide'],
        whole_vs_slide_size=(64, 96),
    )
    text = tmp_path / 'notes.txt'
    text.write_text('not an image')
    other = tmp_path / 'other.pth'
    torch.save({'state_dict': {'conv1.weight': torch.zeros(2, 3, 3, 3)}}, other)
    for changes, message in [
        (dict(image=str(text)), 'cannot be read as an image'),
        (dict(image=str(tmp_path / 'missing.jpg')), 'does not exist'),
        (dict(checkpoint=str(text)), 'neither a torch checkpoint'),
        (dict(checkpoint=str(other)), "does not fit the config's segmentor"),
    ]:
        with pytest.raises(BenchmarkError, match=message):
            run_benchmark(dataclasses.replace(options, **changes), log=lambda line: None)
    with pytest.raises(BenchmarkError, match='are for --mode segmentor'):
        run_benchmark(tiny_options(image=str(text)), log=lambda line: None)


def test_tool_rejects_bad_options_with_exit_code_2(load_tool, capsys):
    tool = load_tool('analysis/benchmark.py')
    assert tool.size('512x683') == (512, 683)
    assert tool.size('640') == (640, 640)
    assert tool.main(['--cases', 'nothing-like-this', '--no-memory']) == 2
    assert "--cases 'nothing-like-this' matches none" in capsys.readouterr().err
    assert tool.main(['--size', '500']) == 2
    assert 'multiples of the patch size' in capsys.readouterr().err
    with pytest.raises(BenchmarkError, match='at least 1'):
        run_benchmark(tiny_options(warmup=0))


def test_whole_image_scaling_times_both_paths_and_plots(tmp_path):
    plot = tmp_path / 'scaling.png'
    options = tiny_options(
        cases=['whole-image-scaling'],
        scaling_sizes=((32, 32), (64, 48)),
        memory=True,
        rounds=1,
        plot=str(plot),
    )
    result = run_benchmark(options, log=lambda line: None)
    assert result['cases'] == []  # the scaling case alone builds no mmseg model
    scaling = result['whole_image_scaling']
    assert scaling['model_img_size'] == [32, 32]
    assert [entry['tokens'] for entry in scaling['sizes']] == [5, 13]
    for entry in scaling['sizes']:
        assert entry['max_abs_diff'] < 1e-5
        assert list(entry['variants']) == ['ours', 'ours_dense']
        dense = entry['variants']['ours_dense']
        assert dense['time_ratio'] == 1.0
        for stats in entry['variants'].values():
            assert len(stats['times']) == 1
            assert stats['memory']['step_mb'] > 0
            assert stats['memory']['step_mb'] <= stats['memory']['net_mb']
    assert plot.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    report = format_report(result)
    assert 'whole-image inference, fp32, batch 1, model img_size 32x32' in report
    assert 'MAEViT, dense bias' in report and 'memory grows' in report


def test_scaling_case_runs_only_when_named():
    options = tiny_options(cases=['*-b1-fp32'], memory=False, scaling_sizes=((32, 32),))
    result = run_benchmark(options, log=lambda line: None)
    assert 'whole_image_scaling' not in result
    options = dataclasses.replace(options, cases=['*'])
    result = run_benchmark(options, log=lambda line: None)
    assert 'whole_image_scaling' in result
    with pytest.raises(BenchmarkError, match='--plot is the plot of --cases whole-image-scaling'):
        run_benchmark(tiny_options(plot='x.png'), log=lambda line: None)
    with pytest.raises(BenchmarkError, match='--scaling-sizes \\(40, 32\\): use multiples'):
        run_benchmark(
            tiny_options(cases=['whole-image-scaling'], scaling_sizes=((40, 32),)),
            log=lambda line: None,
        )
