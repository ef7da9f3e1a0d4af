"""The package imports, registers beside mmseg's own modules, and its tooling is wired."""

import re
import subprocess
import sys
from pathlib import Path

import mmseg.models  # noqa: F401  (fills mmseg's registries)
from mmseg.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

import mae_seg

ROOT = Path(__file__).resolve().parents[1]


def test_version_is_defined_once():
    version_file = (ROOT / 'mae_seg' / 'version.py').read_text()
    assert re.search(r"__version__ = '\d+\.\d+\.\d+'", version_file)
    assert mae_seg.__version__ in version_file


def test_mmseg_baseline_modules_stay_registered():
    from mmseg.engine.optimizers import LayerDecayOptimizerConstructor
    from mmseg.models.backbones import MAE

    assert MODELS.get('MAE') is MAE
    assert OPTIM_WRAPPER_CONSTRUCTORS.get('LayerDecayOptimizerConstructor') is (
        LayerDecayOptimizerConstructor
    )


def test_custom_imports_in_a_config_load_the_package(tmp_path):
    config = tmp_path / 'cfg.py'
    config.write_text("custom_imports = dict(imports=['mae_seg'], allow_failed_imports=False)\n")
    code = (
        'import sys; from mmengine.config import Config; '
        f'Config.fromfile({str(config)!r}); '
        "print('mae_seg' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == 'True'


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / 'README.md').read_text()
    match = re.search(r'## Test\n.*?```(?:bash|shell)?\n(.+?)\n```', readme, re.S)
    assert match, 'README.md has no "## Test" section with a command block'
    test_command = match.group(1).strip()
    ci_lines = [line.strip() for line in (ROOT / '.ci' / 'run').read_text().splitlines()]
    assert test_command in ci_lines


# In a fresh interpreter: what the process looks like after mae_seg's dependencies are
# imported, then after `import mae_seg`.
PROCESS_STATE = """
import warnings, torch, timm, mmseg.models, mmseg.datasets, mmseg.engine
import mmengine.config.config as config_module
from mmengine.model import BaseModule

def state():
    return (
        list(warnings.filters),
        BaseModule._dump_init_info,
        list(torch.serialization.get_safe_globals()),
        config_module.is_installed,
        config_module.get_installed_path,
    )

before = state()
import mae_seg
from mmseg.registry import MODELS
print(state() == before, MODELS.get('MAEViT') is mae_seg.MAEViT)
from mae_seg.compat import setup_openmmlab
setup_openmmlab()
print(state() == before)
"""


def test_import_registers_and_changes_nothing_else():
    result = subprocess.run(
        [sys.executable, '-c', PROCESS_STATE], capture_output=True, text=True, check=True
    )
    # Unchanged after the import, registered, and changed by the documented call only.
    assert result.stdout.split() == ['True', 'True', 'False']
