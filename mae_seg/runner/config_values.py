"""Config values that disagree with each other or with what training can do.

Each of these is accepted when the config is read and fails, or is silently wrong, minutes
later: heads and data set with different class counts, a batch of one image that a pooled
BatchNorm cannot train on, a data preprocessor that cannot stack the training crops, a
neck or head reading feature maps the backbone does not give. They are the mmseg
questions asked most often (``Expected more than 1 value per channel when training``,
``only one of size and size_divisor should be valid``, ``stack expects each tensor to be
equal size``); here each is one line naming the keys and the fix, before the run.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator

from mmengine.config import Config
from mmseg.registry import DATASETS, MODELS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..engine.optimizers.layer_decay import num_layers_problem
from .device import accelerator_available

__all__ = [
    'batch_norm_problems',
    'config_value_problems',
    'feature_map_problems',
    'layer_decay_problems',
    'num_classes_problems',
    'preprocessor_problems',
    'world_size',
]


def _heads(model_cfg: dict) -> Iterator[tuple[str, dict]]:
    """``(config key, head config)`` of the decode head and every auxiliary head."""
    for key in ('decode_head', 'auxiliary_head'):
        heads = model_cfg.get(key)
        if isinstance(heads, dict):
            yield f'model.{key}', heads
        elif isinstance(heads, (list, tuple)):
            for index, head in enumerate(heads):
                yield f'model.{key}[{index}]', head


def _dataset_classes(dataset_cfg: dict) -> tuple | None:
    """The class names a data set config will have (``metainfo``, else its class's)."""
    while isinstance(dataset_cfg, dict) and isinstance(dataset_cfg.get('dataset'), dict):
        dataset_cfg = dataset_cfg['dataset']  # RepeatDataset and other wrappers
    if not isinstance(dataset_cfg, dict):
        return None
    classes = (dataset_cfg.get('metainfo') or {}).get('classes')
    if classes is None:
        dataset_type = dataset_cfg.get('type')
        dataset_class = DATASETS.get(dataset_type) if isinstance(dataset_type, str) else None
        classes = getattr(dataset_class, 'METAINFO', {}).get('classes')
    return tuple(classes) if classes is not None else None


def num_classes_problems(cfg: Config) -> list[str]:
    """Every head predicts as many classes as the training and validation data sets name."""
    heads = [(key, head['num_classes']) for key, head in _heads(cfg.model) if 'num_classes' in head]
    if not heads:
        return []
    problems = []
    first_key, num_classes = heads[0]
    for key, count in heads[1:]:
        if count != num_classes:
            problems.append(
                f'{key}.num_classes={count} and {first_key}.num_classes={num_classes} differ: '
                'set both to the number of classes of the data set'
            )
    for loader in ('train_dataloader', 'val_dataloader'):
        classes = _dataset_classes((cfg.get(loader) or {}).get('dataset'))
        if classes is not None and len(classes) != num_classes:
            shown = ', '.join(map(str, classes[:4])) + (', ...' if len(classes) > 4 else '')
            problems.append(
                f'{first_key}.num_classes={num_classes} but {loader}.dataset names '
                f'{len(classes)} classes ({shown}): set num_classes={len(classes)} in every '
                'head, or the classes in the data set metainfo'
            )
    return problems


def _pooled_norms(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """BatchNorms that see a 1x1 map: after a global pooling in the same ``Sequential``
    (PSP/UPerNet's pooled branch, ASPP's image pool)."""
    found = []
    for name, module in model.named_modules():
        children = list(module.children()) if isinstance(module, nn.Sequential) else []
        if not children or not isinstance(children[0], nn.AdaptiveAvgPool2d):
            continue
        if children[0].output_size not in (1, (1, 1)):
            continue
        norms = [m for child in children[1:] for m in child.modules() if isinstance(m, _BatchNorm)]
        if norms:
            found.append((name, norms[0]))
    return found


# Where each launcher tells a process how many there are (mmengine reads them later).
WORLD_SIZE_VARIABLES = {'slurm': 'SLURM_NTASKS', 'mpi': 'OMPI_COMM_WORLD_SIZE'}


def world_size(cfg: Config) -> int:
    """Processes of the run, before any process group exists: the launcher's variable
    (``WORLD_SIZE`` for torchrun, and for ``dist_train.sh``'s check)."""
    variable = WORLD_SIZE_VARIABLES.get(cfg.get('launcher', 'none'), 'WORLD_SIZE')
    value = os.environ.get(variable, '1')
    return int(value) if value.isdigit() else 1


def batch_norm_problems(cfg: Config, model: nn.Module) -> list[str]:
    """A pooled BatchNorm gets more than one value per channel from the batch a process has.

    With one image a process, a BatchNorm after a global pooling sees one value per channel,
    which training refuses. SyncBN shares the batch of all processes, but only on GPUs
    (without one, mae_seg trains with BN per process) and only with more than one process.
    :func:`world_size` gives the process count.
    """
    batch_size = (cfg.get('train_dataloader') or {}).get('batch_size', 1)
    if not isinstance(batch_size, int) or batch_size > 1:
        return []
    processes = world_size(cfg)
    shared = processes > 1 and accelerator_available()
    stuck = [
        (name, norm)
        for name, norm in _pooled_norms(model)
        if not (shared and isinstance(norm, nn.SyncBatchNorm))
    ]
    if not stuck:
        return []
    names = ', '.join(name for name, _ in stuck[:3]) + (' ...' if len(stuck) > 3 else '')
    kind = type(stuck[0][1]).__name__
    on = f'{processes} process' + ('es' if processes > 1 else '')
    return [
        f'train_dataloader.batch_size=1 on {on}: {names} pool to 1x1 before a '
        f'{kind}, which cannot train on one value per channel ("Expected more than 1 value '
        'per channel when training"); set train_dataloader.batch_size=2 or more'
        + ('' if processes > 1 else ', or train on several GPUs with SyncBN')
    ]


def _random_crop_size(cfg: Config) -> tuple[int, int] | None:
    dataset = (cfg.get('train_dataloader') or {}).get('dataset') or {}
    while isinstance(dataset.get('dataset'), dict):
        dataset = dataset['dataset']
    for transform in dataset.get('pipeline') or []:
        if isinstance(transform, dict) and transform.get('type') == 'RandomCrop':
            return tuple(transform['crop_size'])
    return None


def preprocessor_problems(cfg: Config) -> list[str]:
    """``model.data_preprocessor`` can stack the training crops into a batch."""
    preprocessor = cfg.model.get('data_preprocessor') or {}
    if preprocessor.get('type', 'SegDataPreProcessor') not in (
        'SegDataPreProcessor',
        'mmseg.SegDataPreProcessor',
    ):
        return []
    size, divisor = preprocessor.get('size'), preprocessor.get('size_divisor')
    if (size is None) == (divisor is None):
        given = 'both' if size is not None else 'neither'
        return [
            f'model.data_preprocessor has {given} of size and size_divisor, and training '
            'needs exactly one to stack its crops ("only one of size and size_divisor should '
            'be valid"): set size=crop_size and remove size_divisor'
        ]
    crop = _random_crop_size(cfg)
    if size is not None and crop is not None and any(s < c for s, c in zip(size, crop)):
        return [
            f'model.data_preprocessor.size={tuple(size)} is smaller than the RandomCrop '
            f'crop_size={crop} of train_dataloader: a batch of larger and smaller images '
            'cannot be stacked ("stack expects each tensor to be equal size"); set '
            'data_preprocessor size=crop_size'
        ]
    return []


def _backbone_maps(model: nn.Module) -> tuple[int, int] | None:
    """``(maps, channels)`` a ViT backbone gives: one ``embed_dims`` map per valid out index."""
    backbone = getattr(model, 'backbone', None)
    indices = getattr(backbone, 'out_indices', None)
    layers, channels = getattr(backbone, 'num_layers', None), getattr(backbone, 'embed_dims', None)
    if not isinstance(indices, (list, tuple)) or layers is None or channels is None:
        return None
    # MAEViT and mmseg's ViTs return block i when i is in out_indices: repeats count once.
    return len({i for i in indices if 0 <= i < layers}), channels


def feature_map_problems(cfg: Config, model: nn.Module) -> list[str]:
    """The neck and heads read feature maps that the backbone gives, with their channels.

    For ViT backbones (``out_indices``, ``embed_dims``) with no neck or a
    ``Feature2Pyramid`` one (which keeps the count and the channels).
    """
    given = _backbone_maps(model)
    if given is None:
        return []
    maps, channels = given
    problems = []
    neck = getattr(model, 'neck', None)
    if neck is not None:
        rescales = getattr(neck, 'rescales', None)
        if rescales is None:
            return []
        if len(rescales) != maps:
            problems.append(
                f'model.neck.rescales has {len(rescales)} entries and the backbone gives '
                f'{maps} maps (model.backbone.out_indices): give one rescale per map'
            )
        embed_dim = (cfg.model.get('neck') or {}).get('embed_dim')
        if embed_dim is not None and embed_dim != channels:
            problems.append(
                f'model.neck.embed_dim={embed_dim} and model.backbone.embed_dims={channels} '
                'differ: set embed_dim to the backbone embed_dims'
            )
    for key in ('decode_head', 'auxiliary_head'):
        heads = getattr(model, key, None)
        for index, head in enumerate(heads if isinstance(heads, nn.ModuleList) else [heads]):
            where = f'model.{key}' + (f'[{index}]' if isinstance(heads, nn.ModuleList) else '')
            problems += _head_problems(head, where, maps, channels)
    return problems


def _head_problems(head, where: str, maps: int, channels: int) -> list[str]:
    if head is None or not hasattr(head, 'in_index'):
        return []
    indices = head.in_index if isinstance(head.in_index, (list, tuple)) else [head.in_index]
    widths = head.in_channels if isinstance(head.in_channels, (list, tuple)) else [head.in_channels]
    outside = [i for i in indices if not -maps <= i < maps]
    if outside:
        return [
            f'{where}.in_index {outside} outside the {maps} maps the backbone gives '
            f'(model.backbone.out_indices): use 0 to {maps - 1}'
        ]
    wrong = [width for width in widths if width != channels]
    if wrong:
        return [
            f'{where}.in_channels={head.in_channels} but the backbone maps have {channels} '
            f'channels (model.backbone.embed_dims): set in_channels to {channels} for each map'
        ]
    return []


def config_value_problems(cfg: Config, model: nn.Module) -> list[str]:
    """Every disagreement above, one line each; ``model`` may be built on the meta device."""
    return (
        num_classes_problems(cfg)
        + preprocessor_problems(cfg)
        + feature_map_problems(cfg, model)
        + batch_norm_problems(cfg, model)
    )


# mmseg's layer-decay constructors, which take the depth from paramwise_cfg.num_layers only.
MMSEG_LAYER_DECAY = {'LayerDecayOptimizerConstructor', 'LearningRateDecayOptimizerConstructor'}


def _configured_depth(backbone_cfg) -> int | None:
    """``num_layers`` a backbone config builds with: given, else its class's default."""
    if not isinstance(backbone_cfg, dict):
        return None
    if 'num_layers' in backbone_cfg:
        depth = backbone_cfg['num_layers']
    else:
        backbone_type = backbone_cfg.get('type')
        if isinstance(backbone_type, str):
            backbone_type = MODELS.get(backbone_type)
        try:
            argument = inspect.signature(backbone_type).parameters.get('num_layers')
        except (TypeError, ValueError):
            return None
        if argument is None or argument.default is inspect.Parameter.empty:
            return None
        depth = argument.default
    return depth if isinstance(depth, int) and not isinstance(depth, bool) else None


def layer_decay_problems(cfg: Config) -> list[str]:
    """``optim_wrapper.paramwise_cfg.num_layers`` agrees with the backbone's depth.

    Read from the config alone (``model.backbone.num_layers``, else the backbone class's
    default), so that every tool finds it before building. ``MAELayerDecayOptimizerConstructor``
    reads the depth from the model and takes a given ``num_layers`` only when equal
    (:func:`~mae_seg.engine.optimizers.layer_decay.num_layers_problem`); mmseg's
    constructors need it, and decay a wrong one silently.
    """
    wrapper = cfg.get('optim_wrapper') or {}
    constructor = wrapper.get('constructor')
    if not isinstance(constructor, str):
        return []
    constructor = constructor.split('.')[-1]  # a scope prefix, 'mmseg.' or 'mae_seg.'
    depth = _configured_depth((cfg.get('model') or {}).get('backbone'))
    if depth is None:
        return []
    given = (wrapper.get('paramwise_cfg') or {}).get('num_layers')
    if constructor == 'MAELayerDecayOptimizerConstructor':
        problem = num_layers_problem(given, depth)
        return [problem] if problem else []
    if constructor not in MMSEG_LAYER_DECAY or given == depth:
        return []
    said = ' is missing' if given is None else f'={given}'
    return [
        f'optim_wrapper.paramwise_cfg.num_layers{said} and the backbone has {depth} '
        f"transformer blocks (model.backbone.num_layers={depth}): mmseg's {constructor} "
        f'needs their count; set paramwise_cfg.num_layers={depth}, or use '
        "constructor='MAELayerDecayOptimizerConstructor', which reads it from the model"
    ]
