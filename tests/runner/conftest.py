"""A tiny quick-start config (4 layers, 64 dims, 64x64) to check weights and values against."""

import pytest
from mmengine.config import Config


@pytest.fixture
def tiny_config(tmp_path, tiny_quick_start):
    """``make(num_classes=5, **cfg_options)``: the config, its work_dir in ``tmp_path``."""

    def make(num_classes=5, **options):
        return _tiny_config(tiny_quick_start, tmp_path, num_classes, **options)

    return make


def _tiny_config(base, tmp_path, num_classes, **options):
    cfg = Config.fromfile(str(base))
    cfg.merge_from_dict(
        {
            'model.decode_head.num_classes': num_classes,
            'model.auxiliary_head.num_classes': num_classes,
            **options,
        }  # fmt: skip
    )
    cfg.work_dir = str(tmp_path / 'work')
    return cfg
