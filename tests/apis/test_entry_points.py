"""mmseg's own entry points on our configs, in a fresh interpreter, without ``import mae_seg``.

Each runs in a subprocess where ``pkg_resources`` cannot be imported, as with setuptools
>= 81, whatever the test environment has.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / 'configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py'

PRELUDE = """
import sys
sys.modules['pkg_resources'] = None  # as with setuptools >= 81: importing it fails
assert 'mae_seg' not in sys.modules
config, checkpoint, image = sys.argv[1:4]
"""

SCRIPTS = {
    'Config.fromfile': """
from mmengine.config import Config
cfg = Config.fromfile(config)
print(cfg.model.backbone.type, cfg.train_cfg.max_iters)
""",
    'init_model': """
from mmseg.apis import inference_model, init_model
model = init_model(config, checkpoint, device='cpu')
result = inference_model(model, image)
print(type(model.backbone).__name__, *result.pred_sem_seg.data.shape)
""",
    'MMSegInferencer': """
from mmseg.apis import MMSegInferencer
inferencer = MMSegInferencer(model=config, weights=checkpoint, device='cpu')
result = inferencer(image, return_datasamples=True)
print(type(inferencer.model.backbone).__name__, *result.pred_sem_seg.data.shape)
""",
}


def run_fresh(script, *args):
    path = os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')])
    env = dict(os.environ, PYTHONPATH=path)
    return subprocess.run(
        [sys.executable, '-c', PRELUDE + script, *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.parametrize('entry_point', list(SCRIPTS))
def test_mmseg_entry_point_on_our_config(entry_point, tiny_model, images):
    config, checkpoint = tiny_model
    result = run_fresh(SCRIPTS[entry_point], config, checkpoint, images[1])
    assert result.returncode == 0, result.stderr[-3000:]
    if entry_point == 'Config.fromfile':
        assert result.stdout.split() == ['MAEViT', '400']
    else:
        # the label map at the image's own size (70 x 100), from our backbone
        assert result.stdout.split()[-4:] == ['MAEViT', '1', '70', '100']


@pytest.mark.slow
def test_shipped_base_config_reads_in_a_fresh_interpreter():
    result = run_fresh(SCRIPTS['Config.fromfile'], BASE, '', '')
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ['MAEViT', '160000']


@pytest.mark.slow
def test_without_our_first_base_the_mmseg_base_fails(tmp_path):
    """The control: an ``mmseg::`` base read before mae_seg is imported needs pkg_resources."""
    config = tmp_path / 'plain.py'
    config.write_text(
        "_base_ = ['mmseg::_base_/schedules/schedule_160k.py']\nmodel = dict(backbone=dict())\n"
    )
    result = run_fresh(SCRIPTS['Config.fromfile'], config, '', '')
    assert result.returncode != 0
    assert 'pkg_resources' in result.stderr
