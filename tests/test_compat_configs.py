"""Configs inherit ``mmseg::`` bases whether or not setuptools still ships pkg_resources."""

import importlib.util
import os

import mmseg
import pytest
from mmengine.config import Config

import mae_seg  # noqa: F401  (the shim: tests/conftest.py calls setup_openmmlab)
from mae_seg.compat import installed_package_path


def test_installed_package_path_maps_distribution_to_module():
    assert installed_package_path('mmsegmentation') == os.path.dirname(mmseg.__file__)
    assert installed_package_path('mmseg') == os.path.dirname(mmseg.__file__)
    with pytest.raises(ModuleNotFoundError, match='no_such_package_here'):
        installed_package_path('no_such_package_here')


def test_mmseg_scoped_base_resolves(tmp_path):
    config = tmp_path / 'scoped.py'
    config.write_text("_base_ = ['mmseg::_base_/schedules/schedule_160k.py']\n")
    cfg = Config.fromfile(str(config))
    assert cfg.train_cfg.max_iters == 160000


def test_shim_only_where_pkg_resources_is_missing():
    from mmengine.config import config

    patched = config.get_installed_path is installed_package_path
    assert patched == (importlib.util.find_spec('pkg_resources') is None)
