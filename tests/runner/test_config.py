"""tools/train.py and tools/test.py options, and fitting GPU recipes to a machine without one."""

from pathlib import Path

import pytest
from mmengine.config import Config

from mae_seg.errors import ConfigError
from mae_seg.runner import accelerator_available, load_config, setup_test_config, setup_train_config

ROOT = Path(__file__).resolve().parents[2]
BASE = str(ROOT / 'configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py')
MS = str(ROOT / 'configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512-ms.py')
QUICK = str(ROOT / 'configs/quick_start/mae-tiny_upernet_2xb4-400_shapes-128x128.py')

cpu_only = pytest.mark.skipif(accelerator_available(), reason='behaviour without a GPU')


def test_missing_config_is_named(tmp_path):
    with pytest.raises(ConfigError, match='does-not-exist.py does not exist'):
        load_config(str(tmp_path / 'does-not-exist.py'))


def test_cfg_options_are_merged():
    cfg = load_config(QUICK, {'train_cfg.max_iters': 7, 'model.backbone.num_layers': 2})
    assert cfg.train_cfg.max_iters == 7 and cfg.model.backbone.num_layers == 2


def test_work_dir_from_the_command_line_then_the_config_then_the_name():
    cfg = setup_train_config(load_config(QUICK), QUICK, work_dir='here')
    assert cfg.work_dir == 'here'
    cfg = load_config(QUICK, {'work_dir': 'in_config'})
    assert setup_train_config(cfg, QUICK).work_dir == 'in_config'
    cfg = setup_train_config(load_config(QUICK), QUICK)
    assert cfg.work_dir == './work_dirs/mae-tiny_upernet_2xb4-400_shapes-128x128'


@cpu_only
def test_amp_config_without_gpu_names_the_fix():
    with pytest.raises(ConfigError, match='optim_wrapper.type=OptimWrapper'):
        setup_train_config(load_config(BASE), BASE)


def test_switching_amp_off_drops_its_keys(mm_log):
    cfg = load_config(BASE, {'optim_wrapper.type': 'OptimWrapper'})
    cfg = setup_train_config(cfg, BASE)
    assert 'loss_scale' not in cfg.optim_wrapper
    assert cfg.optim_wrapper.constructor == 'MAELayerDecayOptimizerConstructor'
    assert any('loss_scale' in message for message in mm_log)


@cpu_only
def test_amp_flag_without_gpu_is_refused():
    with pytest.raises(ConfigError, match='needs a GPU'):
        setup_train_config(load_config(QUICK), QUICK, amp=True)


def test_amp_flag_only_turns_optim_wrapper_into_amp(monkeypatch):
    monkeypatch.setattr('mae_seg.runner.device.accelerator_available', lambda: True)
    monkeypatch.setattr('mae_seg.runner.config.accelerator_available', lambda: True)
    cfg = setup_train_config(load_config(QUICK), QUICK, amp=True)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    cfg = load_config(QUICK, {'optim_wrapper.type': 'ApexOptimWrapper'})
    with pytest.raises(ConfigError, match='ApexOptimWrapper'):
        setup_train_config(cfg, QUICK, amp=True)


def test_training_a_test_time_config_is_refused():
    with pytest.raises(ConfigError, match='test-time augmentation config'):
        setup_train_config(load_config(MS), MS)


@cpu_only
def test_distributed_on_cpu_uses_gloo_and_a_cpu_ddp_wrapper():
    cfg = setup_train_config(
        load_config(QUICK, {'env_cfg.dist_cfg.backend': 'nccl'}), QUICK, launcher='pytorch'
    )
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.type == 'CPUDistributedDataParallel'
    cfg = setup_train_config(load_config(QUICK), QUICK)
    assert cfg.get('model_wrapper_cfg') is None


@cpu_only
def test_slurm_without_gpu_points_to_torchrun():
    with pytest.raises(ConfigError, match='dist_train.sh'):
        setup_train_config(load_config(QUICK), QUICK, launcher='slurm')


def test_tta_wraps_the_model_once():
    cfg = setup_test_config(load_config(QUICK), QUICK, 'model.pth', tta=True)
    assert cfg.model.type == 'BatchedSlideSegTTAModel'
    assert cfg.model.module.type == 'BatchedSlideEncoderDecoder'
    assert cfg.test_dataloader.dataset.pipeline == cfg.tta_pipeline
    ms = setup_test_config(load_config(MS), MS, 'model.pth', tta=True)
    assert ms.model.type == 'BatchedSlideSegTTAModel'
    assert ms.model.module.type == 'BatchedSlideEncoderDecoder'


def test_tta_needs_its_config_keys(tmp_path):
    config = tmp_path / 'no_tta.py'
    config.write_text(f'_base_ = [{QUICK!r}]\ntta_model = None\n')
    with pytest.raises(ConfigError, match='tta_model'):
        setup_test_config(load_config(str(config)), str(config), 'model.pth', tta=True)


def test_show_dir_turns_on_drawing():
    cfg = setup_test_config(load_config(QUICK), QUICK, 'model.pth', show_dir='paint')
    assert cfg.default_hooks.visualization.draw is True
    assert cfg.visualizer.save_dir == 'paint'
    assert cfg.load_from == 'model.pth'


def test_out_keeps_predictions():
    cfg = setup_test_config(load_config(QUICK), QUICK, 'model.pth', out='predictions')
    assert cfg.test_evaluator.output_dir == 'predictions'
    assert cfg.test_evaluator.keep_results is True


def test_test_config_keeps_amp_on_cpu():
    cfg = setup_test_config(load_config(BASE), BASE, 'model.pth')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'  # not built for testing
    assert isinstance(cfg, Config)


def test_a_restarted_fine_tuning_run_continues_from_its_own_checkpoint(tmp_path):
    cfg = load_config(QUICK, {'load_from': 'segmentor.pth'})
    cfg = setup_train_config(cfg, QUICK, work_dir=str(tmp_path), restarted=True)
    assert (cfg.resume, cfg.load_from) == (False, 'segmentor.pth')  # nothing saved yet
    (tmp_path / 'iter_4.pth').write_bytes(b'')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    cfg = load_config(QUICK, {'load_from': 'segmentor.pth'})
    cfg = setup_train_config(cfg, QUICK, work_dir=str(tmp_path), restarted=True)
    assert (cfg.resume, cfg.load_from) == (True, str(tmp_path / 'iter_4.pth'))


@pytest.mark.parametrize(
    'text, expected',
    [
        ('x = dict(a=1\n', "config {path}, line 1: '(' was never closed"),
        ("_base_ = ['missing_base.py']\n", 'config {path}: {dir}/missing_base.py does not exist'),
        (
            'a = 1\nb = undefined_name\n',
            "config {path}: NameError: name 'undefined_name' is not defined ({path}, line 2)",
        ),
    ],
    ids=['syntax', 'missing-base', 'undefined-name'],
)
def test_unreadable_config_is_one_line_naming_file_and_line(tmp_path, text, expected):
    config = tmp_path / 'broken.py'
    config.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(str(config))
    assert str(error.value) == expected.format(path=config, dir=tmp_path)


def test_setting_a_substituted_variable_is_refused_naming_the_keys_to_set(tmp_path):
    config = tmp_path / 'variables.py'
    config.write_text(
        "data_root = 'data/a'\ncrop_size = (64, 64)\nwork_dir = 'w'\n"
        'train_dataloader = dict(dataset=dict(data_root=data_root))\n'
        'test_dataloader = dict(dataset=dict(data_root=data_root))\n'
    )
    with pytest.raises(ConfigError) as error:
        load_config(str(config), {'data_root': 'data/b'})
    assert str(error.value) == (
        'data_root: data_root is a config variable, already substituted when the config was '
        'read, so setting it changes nothing; set train_dataloader.dataset.data_root, '
        'test_dataloader.dataset.data_root instead'
    )
    with pytest.raises(ConfigError, match='set the keys that use it instead'):
        load_config(str(config), {'crop_size': (32, 32)})
    # Keys the runner reads are set as before.
    options = {'work_dir': 'v', 'train_dataloader.dataset.data_root': 'data/b'}
    cfg = load_config(str(config), options)
    assert cfg.work_dir == 'v' and cfg.train_dataloader.dataset.data_root == 'data/b'


def test_runner_keys_of_a_shipped_config_can_be_set():
    options = {
        'load_from': 'x.pth',
        'resume': True,
        'work_dir': 'w',
        'randomness.seed': 3,
        'train_cfg.max_iters': 5,
        'load_from_reinit': True,
        'default_hooks.logger.interval': 1,
        'model.pretrained': None,
    }
    cfg = load_config(QUICK, options)
    assert cfg.randomness.seed == 3 and cfg.train_cfg.max_iters == 5 and cfg.resume is True


def test_syntax_error_in_a_base_file_names_that_file(tmp_path):
    (tmp_path / 'base.py').write_text('x = dict(a=1\n')
    config = tmp_path / 'top.py'
    config.write_text("_base_ = ['base.py']\nb = 2\n")
    with pytest.raises(ConfigError) as error:
        load_config(str(config))
    assert str(error.value) == f"config {tmp_path}/base.py, line 1: '(' was never closed"
