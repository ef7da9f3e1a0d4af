"""tools/wheelhouse.py: what an offline node gets, resolved against fake wheels."""

import zipfile
from pathlib import Path

import pytest


@pytest.fixture(scope='module')
def wheelhouse(load_tool):
    return load_tool('wheelhouse.py')


def make_wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    path = folder / f'{name.replace("-", "_")}-{version}-py3-none-any.whl'
    metadata = [f'Name: {name}', f'Version: {version}'] + [f'Requires-Dist: {r}' for r in requires]
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr(f'{name}-{version}.dist-info/METADATA', '\n'.join(metadata) + '\n')
    return path


class FakeIndex:
    """``pip download --no-deps`` over a dict of packages; records what was asked for."""

    def __init__(self, folder, packages):
        self.folder, self.packages, self.asked = folder, packages, []

    def __call__(self, requirements):
        from packaging.requirements import Requirement

        paths = []
        for text in requirements:
            self.asked.append(text)
            requirement = Requirement(text)
            versions = self.packages[requirement.name]
            version = max(v for v in versions if requirement.specifier.contains(v))
            paths.append(make_wheel(self.folder, requirement.name, version, versions[version]))
        return paths


def resolve(wheelhouse, tmp_path, packages, roots, have=()):
    from packaging.requirements import Requirement

    index = FakeIndex(tmp_path, packages)
    env = wheelhouse.target_environment('3.12')
    found = wheelhouse.resolve([Requirement(r) for r in roots], set(have), env, index)
    return {name: path.name for name, path in found.items()}, index.asked


PACKAGES = {
    'mmengine': {'0.10.7': ['addict', 'opencv-python>=3', 'numpy', 'yapf']},
    'addict': {'2.4.0': []},
    'yapf': {'0.43.0': ['platformdirs>=3.5.1', 'tomli>=2.0.1; python_version < "3.11"']},
    'platformdirs': {'3.0.0': [], '4.3.6': []},
    'tomli': {'2.0.1': []},
    'numpy': {'2.1.0': []},
    'opencv-python': {'4.10.0.84': ['numpy']},
    'timm': {'1.0.0': ['torch', 'huggingface_hub', 'hub-extra; extra == "hub"']},
    'huggingface-hub': {'0.20.0': []},
    'huggingface_hub': {'0.20.0': []},
    'hub-extra': {'1.0': []},
    'torch': {'2.11.0': ['nvidia-cudnn-cu13']},
}


def test_follows_requirements_for_the_target_python(wheelhouse, tmp_path):
    found, _ = resolve(wheelhouse, tmp_path, PACKAGES, ['mmengine'])
    # tomli is for Python < 3.11 only; platformdirs is the newest that meets yapf's floor.
    assert set(found) == {'mmengine', 'addict', 'yapf', 'platformdirs', 'numpy', 'opencv-python'}
    assert found['platformdirs'] == 'platformdirs-4.3.6-py3-none-any.whl'


def test_what_the_node_has_is_neither_fetched_nor_followed(wheelhouse, tmp_path):
    have = {'numpy', 'opencv-python-headless', 'torch'}
    found, asked = resolve(wheelhouse, tmp_path, PACKAGES, ['mmengine', 'timm'], have)
    assert set(found) == {'mmengine', 'addict', 'yapf', 'platformdirs', 'timm', 'huggingface-hub'}
    # headless opencv stands in for opencv-python; torch's CUDA closure is never looked at.
    assert not any(a.startswith(('numpy', 'opencv', 'torch', 'nvidia')) for a in asked)


def test_extras_only_where_asked_for(wheelhouse, tmp_path):
    (tmp_path / 'plain').mkdir(), (tmp_path / 'hub').mkdir()
    plain, _ = resolve(wheelhouse, tmp_path / 'plain', PACKAGES, ['timm'], {'torch'})
    with_hub, _ = resolve(wheelhouse, tmp_path / 'hub', PACKAGES, ['timm[hub]'], {'torch'})
    assert 'hub-extra' not in plain and 'hub-extra' in with_hub


def test_requirements_no_single_version_meets_are_an_error(wheelhouse, tmp_path):
    # platformdirs 4.3.6 is fetched for yapf, then a package one level down wants < 4.
    packages = {
        **PACKAGES,
        'platformdirs': {'4.3.6': ['tomli-w']},
        'tomli-w': {'1.0.0': ['platformdirs<4']},
    }
    with pytest.raises(wheelhouse.WheelhouseError, match='platformdirs 4.3.6 .* platformdirs<4'):
        resolve(wheelhouse, tmp_path, packages, ['mmengine'], {'numpy', 'opencv-python'})


def test_reads_pip_freeze_pip_list_and_names(wheelhouse, tmp_path):
    have = tmp_path / 'have.txt'
    have.write_text(
        '# pip freeze\ntorch==2.11.0+cu130\nOpenCV_Python_Headless==4.10\n'
        'timm @ file:///wheels/timm.whl\n-e git+https://x#egg=y\n'
        'Package    Version\n---------- -------\nnumpy      2.1.0\nscipy\n'
    )
    assert wheelhouse.read_have(have) == {
        'torch',
        'opencv-python-headless',
        'timm',
        'numpy',
        'scipy',
    }


def test_project_requirements_come_from_setup_py(wheelhouse):
    names = {r.name for r in wheelhouse.project_requirements(['tests'])}
    assert {'mmengine', 'mmsegmentation', 'timm', 'torch', 'pytest'} <= names
    assert 'mmcv' in names  # dropped by main() when mmcv comes as an sdist


def test_bad_arguments_are_one_line_errors(wheelhouse, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        wheelhouse.main([str(tmp_path / 'out'), '--have', str(tmp_path / 'missing.txt')])
    assert exit_info.value.code == 2
    assert 'no such file' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        wheelhouse.main([str(tmp_path / 'out'), '--python-version', 'py312'])
    assert 'expected e.g. 3.12' in capsys.readouterr().err
