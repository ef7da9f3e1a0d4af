"""tools/test.py --show-dir with only the test data at hand (the training data root missing)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from quick_start_kit import ShapesSpec, make_shapes_dataset

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / 'configs/quick_start/mae-tiny_upernet_2xb4-400_shapes-128x128.py'

CONFIG = """
_base_ = [{quick!r}]
model = dict(pretrained=None, backbone=dict(embed_dims=64), neck=dict(embed_dim=64),
             decode_head=dict(in_channels=[64] * 4, channels=16),
             auxiliary_head=dict(in_channels=64, channels=8))
train_dataloader = dict(dataset=dict(data_root={missing!r}))
val_dataloader = dict(dataset=dict(data_root={missing!r}))
"""


@pytest.fixture(scope='module')
def show_dir_setup(tmp_path_factory):
    """A config whose training and validation roots do not exist, test data and weights."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    tmp = tmp_path_factory.mktemp('show_dir')
    data_root = make_shapes_dataset(
        tmp / 'ADEChallengeData2016', ShapesSpec(num_train=1, num_val=3, short_side=64)
    )
    config = tmp / 'test_only.py'
    config.write_text(CONFIG.format(quick=str(QUICK), missing=str(tmp / 'not_here')))
    init_default_scope('mmseg')
    model = MODELS.build(Config.fromfile(str(config)).model)
    model.init_weights()
    checkpoint = tmp / 'iter_400.pth'
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), checkpoint)
    return config, checkpoint, data_root


def tool_args(config, checkpoint, data_root, tmp_path, *extra):
    return [str(config), str(checkpoint), '--work-dir', str(tmp_path / 'work'),
            '--show-dir', str(tmp_path / 'paint'), *extra, '--cfg-options',
            f'test_dataloader.dataset.data_root={data_root}',
            'default_hooks.visualization.interval=1']  # fmt: skip


@pytest.mark.slow
def test_show_dir_paints_every_image_without_training_data(show_dir_setup, tmp_path):
    config, checkpoint, data_root = show_dir_setup
    command = [sys.executable, 'tools/test.py', *tool_args(config, checkpoint, data_root, tmp_path)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    check = subprocess.run([*command, '--check'], cwd=ROOT, env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr[-3000:]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    painted = sorted(p.name for p in (tmp_path / 'paint/vis_data/vis_image').glob('*.png'))
    assert painted == [f'test_ADE_val_{i:08d}.jpg_0.png' for i in (1, 2, 3)]


def test_show_dir_that_is_a_file_is_one_line(load_tool, show_dir_setup, tmp_path, capsys):
    config, checkpoint, data_root = show_dir_setup
    (tmp_path / 'paint').write_text('')
    tool = load_tool('test.py')
    assert tool.main([*tool_args(config, checkpoint, data_root, tmp_path), '--check']) == 2
    assert capsys.readouterr().err.strip() == (
        f'test.py: error: --show-dir {tmp_path / "paint"} is a file; give a folder'
    )
