"""Missing checkpoints and data sets are reported before a run is built, never a hang."""

from pathlib import Path

import pytest
from quick_start_kit import ShapesSpec, make_shapes_dataset

from mae_seg.errors import ConfigError
from mae_seg.runner import check_checkpoints, check_datasets, load_config

ROOT = Path(__file__).resolve().parents[2]
QUICK = str(ROOT / 'configs/quick_start/mae-tiny_upernet_2xb4-400_shapes-128x128.py')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def quick_config(data_root, **options):
    options.update({f'{key}.dataset.data_root': str(data_root) for key in LOADERS})
    return load_config(QUICK, options)


@pytest.fixture(scope='module')
def shapes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes') / 'ADEChallengeData2016'
    return make_shapes_dataset(root, ShapesSpec(num_train=4, num_val=2, short_side=64))


def test_missing_pretrained_weights_are_named_with_the_fix(tmp_path):
    cfg = quick_config(tmp_path, **{'model.pretrained': str(tmp_path / 'mae.pth')})
    with pytest.raises(ConfigError, match=r'model.pretrained: checkpoint .*mae.pth does not exist'):
        check_checkpoints(cfg, training=True)
    check_checkpoints(cfg, training=False)  # a test run never reads them


def test_pretrained_init_cfg_and_load_from_are_checked(tmp_path):
    init_cfg = dict(type='Pretrained', checkpoint=str(tmp_path / 'neck.pth'))
    cfg = quick_config(tmp_path, **{'model.pretrained': None, 'model.neck.init_cfg': init_cfg})
    with pytest.raises(ConfigError, match='model.neck.init_cfg.checkpoint'):
        check_checkpoints(cfg, training=True)
    cfg = quick_config(tmp_path, **{'model.pretrained': None, 'load_from': 'gone.pth'})
    with pytest.raises(ConfigError, match='checkpoint gone.pth does not exist'):
        check_checkpoints(cfg, training=False)


def test_urls_are_left_to_the_loader(tmp_path):
    cfg = quick_config(tmp_path, **{'model.pretrained': 'https://example.com/mae.pth'})
    check_checkpoints(cfg, training=True)


def test_missing_data_root_names_the_directory_and_the_option(tmp_path):
    cfg = quick_config(tmp_path / 'nowhere')
    with pytest.raises(ConfigError) as error:
        check_datasets(cfg, ('train_dataloader',))
    message = str(error.value)
    assert message.startswith('train_dataloader: ')
    assert 'nowhere' in message and 'images/training does not exist' in message
    assert 'train_dataloader.dataset.data_root' in message


def test_empty_data_set_is_refused_instead_of_spinning(tmp_path):
    root = tmp_path / 'ADEChallengeData2016'
    for split in ('images/training', 'annotations/training'):
        (root / split).mkdir(parents=True)
    (root / 'images/training/photo.png').write_bytes(b'')  # wrong suffix: ADE20K wants .jpg
    with pytest.raises(ConfigError, match=r'train_dataloader: no \.jpg images found in'):
        check_datasets(quick_config(root), ('train_dataloader',))


def test_prepared_data_passes(shapes_root):
    check_datasets(quick_config(shapes_root), LOADERS)


def test_data_set_that_cannot_be_built_is_one_config_error(shapes_root):
    cfg = quick_config(shapes_root, **{'val_dataloader.dataset.seg_map_sufix': '.png'})
    with pytest.raises(ConfigError) as error:
        check_datasets(cfg, ('val_dataloader',))
    message = str(error.value)
    assert message.startswith('val_dataloader.dataset: building the data set: TypeError: ')
    assert 'seg_map_sufix' in message and '\n' not in message
