"""Config values that training would reject or silently get wrong, found before the run."""

import pytest
from mmengine.config import Config

from mae_seg.runner import config_values
from mae_seg.runner.config_values import config_value_problems, layer_decay_problems
from mae_seg.runner.weights import build_meta_model


@pytest.fixture
def problems(tiny_config):
    def find(**options):
        cfg = tiny_config(**options)
        return config_value_problems(cfg, build_meta_model(cfg))

    return find


def test_the_quick_start_values_agree(problems):
    assert problems() == []


def test_heads_and_data_set_with_other_class_counts(problems):
    (line,) = problems(**{'model.auxiliary_head.num_classes': 3})
    assert line.startswith('model.auxiliary_head.num_classes=3 and model.decode_head.num_classes=5')
    found = problems(num_classes=3)
    assert found == [
        f'model.decode_head.num_classes=3 but {loader}.dataset names 5 classes (wall, building, '
        'sky, floor, ...): set num_classes=5 in every head, or the classes in the data set metainfo'
        for loader in ('train_dataloader', 'val_dataloader')
    ]


def test_one_image_per_process_with_a_pooled_batch_norm(problems, monkeypatch):
    (line,) = problems(**{'train_dataloader.batch_size': 1})
    assert line.startswith(
        'train_dataloader.batch_size=1 on 1 process: decode_head.psp_modules.0 pool to 1x1 '
        'before a SyncBatchNorm'
    )
    assert line.endswith(
        'set train_dataloader.batch_size=2 or more, or train on several GPUs with SyncBN'
    )
    # Several processes on CPUs: BN per process, the same problem.
    monkeypatch.setenv('WORLD_SIZE', '2')
    (line,) = problems(**{'train_dataloader.batch_size': 1})
    assert 'on 2 processes' in line
    # On GPUs SyncBN shares the batch of all processes: 2 values per channel.
    monkeypatch.setattr(config_values, 'accelerator_available', lambda: True)
    assert problems(**{'train_dataloader.batch_size': 1}) == []
    monkeypatch.setenv('WORLD_SIZE', '1')
    assert len(problems(**{'train_dataloader.batch_size': 1})) == 1


def test_slurm_and_mpi_tasks_count_as_processes(problems, monkeypatch):
    monkeypatch.setattr(config_values, 'accelerator_available', lambda: True)
    monkeypatch.setenv('SLURM_NTASKS', '8')
    one_image = {'train_dataloader.batch_size': 1}
    assert problems(launcher='slurm', **one_image) == []
    assert len(problems(**one_image)) == 1  # launcher none: one process, whatever Slurm says
    monkeypatch.setenv('OMPI_COMM_WORLD_SIZE', '4')
    assert problems(launcher='mpi', **one_image) == []


def test_plain_batch_norm_is_found_too(problems):
    norm = dict(type='BN', requires_grad=True)
    found = problems(**{'train_dataloader.batch_size': 1, 'model.decode_head.norm_cfg': norm})
    assert 'before a BatchNorm2d' in found[0]


@pytest.mark.parametrize(
    ('options', 'expected'),
    [
        ({'model.data_preprocessor.size': None}, 'model.data_preprocessor has neither of size'),
        ({'model.data_preprocessor.size_divisor': 16}, 'model.data_preprocessor has both of size'),
        (
            {'model.data_preprocessor.size': (32, 64)},
            'model.data_preprocessor.size=(32, 64) is smaller',
        ),
    ],
    ids=['neither', 'both', 'smaller-than-crop'],
)
def test_preprocessor_that_cannot_stack_the_crops(problems, options, expected):
    (line,) = problems(**options)
    assert line.startswith(expected)


@pytest.mark.parametrize(
    ('options', 'expected'),
    [
        ({'model.backbone.out_indices': [1, 2, 3]},
         'model.neck.rescales has 4 entries and the backbone gives 3 maps'),
        ({'model.neck.embed_dim': 128},
         'model.neck.embed_dim=128 and model.backbone.embed_dims=64 differ'),
        ({'model.auxiliary_head.in_index': 4},
         'model.auxiliary_head.in_index [4] outside the 4 maps'),
        ({'model.auxiliary_head.in_channels': 128},
         'model.auxiliary_head.in_channels=128 but the backbone maps have 64'),
        ({'model.decode_head.in_channels': [64, 64, 64, 128]},
         'model.decode_head.in_channels=[64, 64, 64, 128]'),
    ],
    ids=['out-indices', 'neck-dims', 'in-index', 'aux-channels', 'head-channels'],
)  # fmt: skip
def test_neck_and_heads_read_the_maps_the_backbone_gives(problems, options, expected):
    assert problems(**options)[0].startswith(expected)


def layer_decay_config(constructor='MAELayerDecayOptimizerConstructor', backbone=None, **paramwise):
    backbone = dict(type='MAEViT', num_layers=4) if backbone is None else backbone
    return Config(
        dict(
            model=dict(type='EncoderDecoder', backbone=backbone),
            optim_wrapper=dict(
                constructor=constructor, paramwise_cfg=dict(layer_decay_rate=0.65, **paramwise)
            ),
        )
    )


def test_layer_decay_depth_is_said_once_or_alike():
    assert layer_decay_problems(layer_decay_config()) == []
    assert layer_decay_problems(layer_decay_config(num_layers=4)) == []
    (line,) = layer_decay_problems(layer_decay_config(num_layers=24))
    assert line.startswith(
        'optim_wrapper.paramwise_cfg.num_layers=24 but the backbone has 4 transformer blocks '
        '(model.backbone.num_layers=4): '
    )
    assert line.endswith(
        'delete paramwise_cfg.num_layers, or make it equal model.backbone.num_layers'
    )
    # The backbone's default depth (12) where its config leaves num_layers out; a scoped name.
    default = dict(type='mmseg.MAE')
    assert layer_decay_problems(layer_decay_config(backbone=default, num_layers=12)) == []
    (line,) = layer_decay_problems(layer_decay_config(backbone=default, num_layers=4))
    assert 'num_layers=4 but the backbone has 12 transformer blocks' in line


def test_mmseg_layer_decay_needs_the_depth_and_the_right_one():
    for constructor in (
        'LayerDecayOptimizerConstructor',
        'mmseg.LearningRateDecayOptimizerConstructor',
    ):
        assert layer_decay_problems(layer_decay_config(constructor, num_layers=4)) == []
        (missing,) = layer_decay_problems(layer_decay_config(constructor))
        (wrong,) = layer_decay_problems(layer_decay_config(constructor, num_layers=12))
        name = constructor.split('.')[-1]
        assert missing == (
            'optim_wrapper.paramwise_cfg.num_layers is missing and the backbone has 4 '
            f"transformer blocks (model.backbone.num_layers=4): mmseg's {name} needs their "
            'count; set paramwise_cfg.num_layers=4, or use '
            "constructor='MAELayerDecayOptimizerConstructor', which reads it from the model"
        )
        assert wrong.startswith('optim_wrapper.paramwise_cfg.num_layers=12 and the backbone has 4 ')


def test_layer_decay_depth_is_not_judged_without_a_known_depth():
    # A backbone without a num_layers argument (ConvNeXt's stages), another constructor.
    resnet = dict(type='ResNetV1c', depth=50)
    assert layer_decay_problems(layer_decay_config('LayerDecayOptimizerConstructor', resnet)) == []
    assert (
        layer_decay_problems(layer_decay_config('DefaultOptimWrapperConstructor', num_layers=9))
        == []
    )
