"""tools/setup_env.sh on an offline node: a wheelhouse made here, installed with no index.

The stand-in node is this Python's base interpreter with the current environment's torch and
its other packages on ``PYTHONPATH``, less what the set-up itself brings (mmcv, mmengine,
mmsegmentation, their small pure-Python needs and mae_seg); pip's network is pointed at a
closed port, so anything not taken from the wheelhouse fails the install. mmcv's wheel comes
from the set-up's cache (filled when this environment was set up): building it is the same
step as online and takes a quarter of an hour.
"""

import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / 'tools' / 'setup_env.sh'
SITE_PACKAGES = Path(metadata.distribution('torch').locate_file(''))
# Brought by the set-up from the wheelhouse; the node must not have them.
FROM_WHEELHOUSE = {
    'mae-seg',
    'mmcv',
    'mmengine',
    'mmsegmentation',
    'addict',
    'yapf',
    'termcolor',
    'prettytable',
    'ftfy',
    'pip',
    'setuptools',
    'wheel',
}
CLOSED = 'http://127.0.0.1:9'

pytestmark = pytest.mark.slow


def canonical(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def cached_mmcv_wheel() -> Path | None:
    version = torch.__version__.split('+')[0]
    build = f'cu{torch.version.cuda}' if torch.version.cuda else 'cpu'
    cache = Path(
        os.environ.get('MAE_SEG_CACHE')
        or Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')) / 'mae_seg'
    )
    wheels = sorted((cache / 'wheels' / f'torch{version}-{build}-cpu-ops').glob('mmcv-*.whl'))
    return wheels[0] if wheels else None


def make_node_site(folder: Path) -> list[str]:
    """Links to the installed distributions a node would have; returns their names."""
    folder.mkdir()
    names = []
    for dist in metadata.distributions():
        name = canonical(dist.metadata['Name'])
        if name in FROM_WHEELHOUSE or not dist.files:
            continue
        names.append(name)
        for top in {Path(str(file)).parts[0] for file in dist.files}:
            source = SITE_PACKAGES / top
            if top not in ('..', '__pycache__') and source.exists():
                link = folder / top
                if not link.exists():
                    link.symlink_to(source)
    return names


def copy_checkout(destination: Path) -> Path:
    ignore = shutil.ignore_patterns('.venv', '.git', 'work_dirs', 'data', '__pycache__', '*.pth')
    shutil.copytree(ROOT, destination, ignore=ignore, symlinks=True)
    return destination


def run(command: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)


def test_a_wheelhouse_installs_on_a_node_without_network(tmp_path):
    if cached_mmcv_wheel() is None:
        pytest.skip('no cached mmcv wheel for this torch: run tools/setup_env.sh first')
    have = make_node_site(tmp_path / 'node_site')
    (tmp_path / 'have.txt').write_text('\n'.join(have) + '\n')
    base_python = getattr(sys, '_base_executable', sys.executable)
    version = f'{sys.version_info.major}.{sys.version_info.minor}'

    download = run(
        ['bash', str(SETUP), '--download-wheelhouse', str(tmp_path / 'wh'),
         '--python-version', version, '--have', str(tmp_path / 'have.txt')],
        env={**os.environ, 'PYTHON': base_python},
        cwd=tmp_path,
    )  # fmt: skip
    assert download.returncode == 0, download.stdout + download.stderr
    fetched = {path.name.split('-')[0].lower() for path in (tmp_path / 'wh').iterdir()}
    assert {'mmcv', 'mmengine', 'mmsegmentation', 'addict', 'yapf'} <= fetched
    assert not any(name.startswith(('torch', 'numpy', 'nvidia')) for name in fetched)

    checkout = copy_checkout(tmp_path / 'checkout')
    offline = {
        **{k: v for k, v in os.environ.items() if not k.startswith(('PIP_', 'VIRTUAL_ENV'))},
        'PYTHONPATH': str(tmp_path / 'node_site'),
        'PIP_INDEX_URL': f'{CLOSED}/simple',
        'http_proxy': CLOSED,
        'https_proxy': CLOSED,
        'MAE_SEG_WHEELHOUSE': str(tmp_path / 'wh'),
        'MAE_SEG_SYSTEM_SITE': '1',
        'PYTHON': base_python,
    }
    install = run(['bash', str(checkout / 'tools' / 'setup_env.sh')], offline, checkout)
    output = install.stdout + install.stderr
    assert install.returncode == 0, output
    assert 'only (no package index)' in output
    assert 'keeping the installed torch' in output
    assert 'using the cached wheel' in output

    venv_python = checkout / '.venv' / 'bin' / 'python'
    probe = run(
        [str(venv_python), '-c',
         'import mae_seg, mmseg, mmengine, mmcv.ops, torch; from mae_seg.models import MAEViT; '
         'MAEViT(img_size=32, patch_size=16, embed_dims=8, num_layers=1, num_heads=2); '
         'print(mae_seg.__file__, mmseg.__file__, torch.__file__, sep="\\n")'],
        offline,
        tmp_path,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stdout + probe.stderr
    ours, mmseg_file, torch_file = probe.stdout.strip().splitlines()[-3:]
    assert ours.startswith(str(checkout))
    assert mmseg_file.startswith(str(checkout / '.venv'))
    assert torch_file.startswith(str(tmp_path / 'node_site'))
