"""tools/train.py, tools/test.py and the dist_*.sh launchers, end to end on the CPU."""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from quick_start_kit import ShapesSpec, make_shapes_dataset

from mae_seg.runner import accelerator_available
from mae_seg.visualization import load_curves

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / 'configs/quick_start/mae-tiny_upernet_2xb4-400_shapes-128x128.py'
BASE = ROOT / 'configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py'

RUN_CONFIG = """
_base_ = [{quick!r}]
data_root = {data_root!r}
model = dict(
    pretrained=None,
    backbone=dict(drop_path_rate=0.0),
    decode_head=dict(dropout_ratio=0.0),
    auxiliary_head=dict(dropout_ratio=0.0),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=2, end=6),
]
train_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=6, val_interval=100)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=3, max_keep_ckpts=-1))
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run(command, **env):
    environment = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable, **env)
    return subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope='module')
def run_config(tmp_path_factory):
    """A config for the tiny quick-start model on 8 small shapes images, 6 iterations."""
    tmp = tmp_path_factory.mktemp('run')
    data_root = make_shapes_dataset(
        tmp / 'ADEChallengeData2016', ShapesSpec(num_train=8, num_val=2, short_side=64)
    )
    config = tmp / 'tiny_run.py'
    config.write_text(RUN_CONFIG.format(quick=str(QUICK), data_root=str(data_root)))
    return config


def assert_one_error_line(captured, tool):
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f'{tool}: error: ')
    assert 'Traceback' not in captured.err + captured.out
    return lines[0]


@pytest.mark.parametrize(
    ('argv', 'expected'),
    [
        (['no/such/config.py'], 'config no/such/config.py does not exist'),
        (
            ['{config}', '--cfg-options', 'train_dataloader.dataset.data_root=no/such/data'],
            'train_dataloader: no/such/data/images/training does not exist',
        ),
        (
            ['{config}', '--cfg-options', 'model.pretrained=no/such/mae.pth'],
            'model.pretrained: checkpoint no/such/mae.pth does not exist',
        ),
    ],
    ids=['config', 'data-root', 'pretrained'],
)
def test_train_bad_input_is_one_line(load_tool, run_config, capsys, argv, expected):
    argv = [arg.format(config=run_config) for arg in argv]
    assert load_tool('train.py').main(argv) == 2
    assert expected in assert_one_error_line(capsys.readouterr(), 'train.py')


@pytest.mark.skipif(accelerator_available(), reason='behaviour without a GPU')
def test_amp_config_on_cpu_is_one_line(load_tool, capsys, tmp_path):
    assert load_tool('train.py').main([str(BASE), '--work-dir', str(tmp_path)]) == 2
    line = assert_one_error_line(capsys.readouterr(), 'train.py')
    assert 'AmpOptimWrapper' in line and 'optim_wrapper.type=OptimWrapper' in line


def test_test_with_missing_checkpoint_is_one_line(load_tool, run_config, capsys, tmp_path):
    argv = [str(run_config), str(tmp_path / 'iter_6.pth'), '--work-dir', str(tmp_path)]
    assert load_tool('test.py').main(argv) == 2
    assert 'iter_6.pth does not exist' in assert_one_error_line(capsys.readouterr(), 'test.py')


def test_test_with_a_checkpoint_of_another_class_count_is_one_line(
    load_tool, run_config, capsys, tmp_path
):
    """mmengine would load the rest, warn, and report the mIoU of a random classifier."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    init_default_scope('mmseg')
    model = MODELS.build(Config.fromfile(str(run_config)).model)
    checkpoint = tmp_path / 'five_classes.pth'
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, checkpoint)
    three = ['model.decode_head.num_classes=3', 'model.auxiliary_head.num_classes=3']
    argv = [str(run_config), str(checkpoint), '--work-dir', str(tmp_path), '--cfg-options']
    assert load_tool('test.py').main(argv + three) == 2
    line = assert_one_error_line(capsys.readouterr(), 'test.py')
    assert line.startswith(f'test.py: error: checkpoint {checkpoint} does not fit the model of ')
    assert 'decode_head.conv_seg.weight (5, 64, 1, 1) vs (3, 64, 1, 1)' in line
    assert not list(tmp_path.glob('*/*.json'))  # no metrics written


@pytest.mark.parametrize('check', [False, True], ids=['run', 'check'])
def test_test_with_a_value_the_model_refuses_is_one_line(
    load_tool, run_config, capsys, tmp_path, check
):
    """MAEViT's own ValueError when it is built, not a traceback through mmengine's registry."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    init_default_scope('mmseg')
    checkpoint = tmp_path / 'weights.pth'
    model = MODELS.build(Config.fromfile(str(run_config)).model)
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, checkpoint)
    argv = [str(run_config), str(checkpoint), '--work-dir', str(tmp_path / 'work')]
    argv += ['--cfg-options', 'model.backbone.position_fit=extnd'] + ['--check'] * check
    assert load_tool('test.py').main(argv) == 2
    line = assert_one_error_line(capsys.readouterr(), 'test.py')
    assert line == (
        "test.py: error: building the model: ValueError: position fit 'extnd' is not one of "
        "('stretch', 'extend')"
    )
    assert not (tmp_path / 'work').exists()


def test_batch_of_one_image_is_one_line_at_check_and_at_training(
    load_tool, run_config, capsys, tmp_path
):
    argv = [str(run_config), '--work-dir', str(tmp_path), '--cfg-options']
    for check in (['--check'], []):
        assert load_tool('train.py').main(check + argv + ['train_dataloader.batch_size=1']) == 2
        line = assert_one_error_line(capsys.readouterr(), 'train.py')
        assert line.startswith('train.py: error: train_dataloader.batch_size=1 on 1 process: ')


def test_cli_process_exits_2_without_traceback(run_config, tmp_path):
    result = run(
        [sys.executable, 'tools/train.py', str(run_config), '--work-dir', str(tmp_path),
         '--cfg-options', f'train_dataloader.dataset.data_root={tmp_path / "empty"}']
    )  # fmt: skip
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    errors = [line for line in result.stderr.splitlines() if 'error' in line.lower()]
    assert errors == [
        f'train.py: error: train_dataloader: {tmp_path}/empty/images/training '
        'does not exist; prepare the data set or set '
        'train_dataloader.dataset.data_root with --cfg-options'
    ]


def test_dist_train_reports_bad_input_once_before_starting_processes(run_config, tmp_path):
    result = run(
        ['bash', 'tools/dist_train.sh', str(run_config), '2', '--work-dir', str(tmp_path),
         '--cfg-options', 'model.pretrained=no/such/mae.pth'],
        PORT=str(free_port()),
    )  # fmt: skip
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr and 'torch.distributed' not in result.stderr
    errors = [line for line in result.stderr.splitlines() if 'error' in line.lower()]
    assert len(errors) == 1 and errors[0].startswith('train.py: error: model.pretrained: ')


@pytest.mark.parametrize('script', ['dist_train.sh', 'dist_test.sh'])
def test_launcher_usage_error(script):
    result = run(['bash', f'tools/{script}', 'config.py'])
    assert result.returncode == 2
    assert result.stderr.startswith(f'usage: bash tools/{script} ')


@pytest.fixture(scope='module')
def two_process_run(run_config, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('ddp')
    result = run(
        ['bash', 'tools/dist_train.sh', str(run_config), '2', '--work-dir', str(work_dir),
         '--cfg-options', 'train_cfg.max_iters=4', 'default_hooks.checkpoint.interval=4'],
        PORT=str(free_port()),
    )  # fmt: skip
    return result, work_dir


@pytest.mark.slow
def test_two_processes_train_together(two_process_run):
    result, work_dir = two_process_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = re.findall(
        r'^rank (\d)/2 on cpu: trained to iteration 4, weights checksum (\S+)$',
        result.stdout,
        re.M,
    )
    assert sorted(rank for rank, _ in ranks) == ['0', '1']
    assert len({checksum for _, checksum in ranks}) == 1  # DDP kept the replicas equal
    # The environment block goes to the log file, not to the terminal.
    (log_file,) = work_dir.glob('*/*.log')
    assert 'Distributed training: True' in log_file.read_text()
    assert 'System environment' not in result.stdout
    assert f'environment, config and hooks: {log_file}' in result.stdout
    assert sorted(p.name for p in work_dir.glob('*.pth')) == ['iter_4.pth']


@pytest.mark.slow
def test_test_tool_with_tta_and_show_dir(two_process_run, run_config, tmp_path):
    _, train_dir = two_process_run
    checkpoint = train_dir / 'iter_4.pth'
    result = run(
        [sys.executable, 'tools/test.py', str(run_config), str(checkpoint), '--tta',
         '--work-dir', str(tmp_path), '--show-dir', str(tmp_path / 'paint'),
         '--cfg-options', 'default_hooks.visualization.interval=1']
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (metrics_file,) = tmp_path.glob('*/*.json')
    assert 0 <= json.loads(metrics_file.read_text())['mIoU'] <= 100
    assert len(list((tmp_path / 'paint/vis_data/vis_image').glob('*.png'))) == 2
    # Environment, config and hook table in the log file only; no warning nobody can act on.
    (log_file,) = tmp_path.glob('*/*.log')
    for dump in ('System environment:', 'Config:', 'Hooks will be executed'):
        assert dump in log_file.read_text()
        assert dump not in result.stdout
    assert 'The shape of value will convert' not in result.stderr


@pytest.mark.slow
def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(run_config, tmp_path):
    """Stopped after iteration 3 and resumed with --resume, on torch >= 2.6 (weights_only)."""
    train = [sys.executable, 'tools/train.py', str(run_config), '--work-dir']
    straight, interrupted = tmp_path / 'straight', tmp_path / 'interrupted'
    result = run([*train, str(straight)])
    assert result.returncode == 0, result.stderr[-3000:]
    result = run([*train, str(interrupted), '--cfg-options', 'train_cfg.max_iters=3'])
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (interrupted / 'iter_6.pth').exists()
    result = run([*train, str(interrupted), '--resume'])
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Resumed from' in result.stdout or 'resumed' in result.stdout.lower()

    expected = torch.load(straight / 'iter_6.pth', weights_only=True)['state_dict']
    actual = torch.load(interrupted / 'iter_6.pth', weights_only=True)['state_dict']
    assert expected.keys() == actual.keys()
    max_diff = max((expected[k].float() - actual[k].float()).abs().max().item() for k in expected)
    print(f'max abs weight difference after resuming: {max_diff:.3g}')
    assert max_diff <= 1e-6
    # plot_curves.py joins the two runs' logs: iterations 1-3, then 4-6 from the resumed run.
    curves = load_curves(interrupted)
    assert len(curves.sources) == 2
    assert [step for step, _ in curves.train['loss']] == [1, 2, 3, 4, 5, 6]
    assert curves.loss_names == ['loss', 'aux.loss_ce', 'decode.loss_ce']


@pytest.mark.slow
@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_test_tool_on_images_smaller_than_a_patch(load_tool, run_config, tmp_path, capsys, mode):
    """12-18 px images, no Resize: mmseg's model fails ("Kernel size can't be greater than
    actual input size"); ours pads them and evaluates label maps of their own size."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    data_root = make_shapes_dataset(
        tmp_path / 'ADEChallengeData2016', ShapesSpec(num_train=1, num_val=2, short_side=12)
    )
    init_default_scope('mmseg')
    model = MODELS.build(Config.fromfile(str(run_config)).model)
    checkpoint = tmp_path / 'model.pth'
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, checkpoint)
    pipeline = [dict(type=t) for t in ('LoadImageFromFile', 'LoadAnnotations', 'PackSegInputs')]
    config = tmp_path / 'no_resize.py'
    dataset = dict(data_root=str(data_root), pipeline=pipeline)
    config.write_text(
        f'_base_ = [{str(run_config)!r}]\ntest_dataloader = dict(dataset={dataset!r})\n'
    )
    argv = [
        str(config), str(checkpoint), '--work-dir', str(tmp_path / 'work'),
        '--cfg-options', f'model.test_cfg.mode={mode}',
    ]  # fmt: skip
    assert load_tool('test.py').main(argv) == 0
    assert re.search(r'mIoU: \d+\.\d+', capsys.readouterr().out)


@pytest.mark.parametrize(
    ('option', 'expected'),
    [
        ('model.backbone.num_layer=4', "MAEViT takes no argument 'num_layer'"),
        ('model.backbone.type=MAEVit', "'MAEVit' is not a registered model type"),
        ('model.test_cfg.mode=slid', "model.test_cfg.mode: 'slid' is not 'whole' or 'slide'"),
        ('model.test_cfg.strde=[85,85]', "(did you mean 'stride'?)"),
    ],
    ids=['argument', 'type', 'mode', 'test-cfg-key'],
)
@pytest.mark.parametrize('check', [False, True], ids=['run', 'check'])
def test_test_checks_the_config_before_building(
    load_tool, run_config, capsys, tmp_path, option, expected, check
):
    # The checkpoint does not exist: the config is checked before anything is read.
    argv = [str(run_config), str(tmp_path / 'none.pth'), '--cfg-options', option]
    assert load_tool('test.py').main(argv + ['--check'] * check) == 2
    assert expected in assert_one_error_line(capsys.readouterr(), 'test.py')


def test_train_checks_the_config_without_check_flag(load_tool, run_config, capsys, tmp_path):
    argv = [str(run_config), '--work-dir', str(tmp_path), '--cfg-options', 'model.test_cfg.strde=4']
    assert load_tool('train.py').main(argv) == 2
    assert "(did you mean 'stride'?)" in assert_one_error_line(capsys.readouterr(), 'train.py')
    assert not list(tmp_path.iterdir())
