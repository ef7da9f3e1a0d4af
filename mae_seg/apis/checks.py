"""Checks of what a run reads, made before minutes go into building it."""

from __future__ import annotations

import copy
import os.path as osp
from collections.abc import Iterator

from mmengine.config import Config
from mmengine.dataset import BaseDataset
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS

from ..datasets.dataset_check import problems_line, sampled_split_check
from .errors import ConfigError

__all__ = ['check_checkpoints', 'check_datasets', 'check_run_inputs']

_CONVERT_HINT = (
    'convert the MAE weights with tools/model_converters/mae2mmseg.py (README: '
    '"Reproducing the ADE20K benchmark") or point it elsewhere with --cfg-options'
)


def _is_local(path: str) -> bool:
    return '://' not in path


def _pretrained_paths(node, where: str) -> Iterator[tuple[str, str]]:
    """``(config key, path)`` of every ``pretrained`` and ``Pretrained`` init in a model config."""
    if isinstance(node, dict):
        if isinstance(node.get('pretrained'), str):
            yield f'{where}.pretrained', node['pretrained']
        if node.get('type') == 'Pretrained' and isinstance(node.get('checkpoint'), str):
            yield f'{where}.checkpoint', node['checkpoint']
        for key, value in node.items():
            if key != 'pretrained':
                yield from _pretrained_paths(value, f'{where}.{key}')
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _pretrained_paths(value, f'{where}[{index}]')


def check_checkpoints(cfg: Config, training: bool) -> None:
    """Local checkpoint paths the run will read exist.

    Training reads ``pretrained`` / ``Pretrained`` weights and ``load_from``; testing reads
    ``load_from`` (the checkpoint argument) only.

    Raises:
        ConfigError: naming the config key and the missing file.
    """
    load_from = cfg.get('load_from')
    if isinstance(load_from, str) and _is_local(load_from) and not osp.isfile(load_from):
        raise ConfigError(f'checkpoint {load_from} does not exist')
    if not training:
        return
    for where, path in _pretrained_paths(cfg.model, 'model'):
        if _is_local(path) and not osp.isfile(path):
            raise ConfigError(f'{where}: checkpoint {path} does not exist; {_CONVERT_HINT}')


def _count_samples(dataset_cfg: dict) -> tuple[object, int]:
    """Build a data set without initialising it fully (an empty one cannot be) and count."""
    dataset_cfg = copy.deepcopy(dataset_cfg)
    dataset_cfg['lazy_init'] = True
    dataset = DATASETS.build(dataset_cfg)
    if isinstance(dataset, BaseDataset):
        return dataset, len(dataset.load_data_list())
    return dataset, len(dataset)


def check_datasets(cfg: Config, loader_keys: tuple[str, ...]) -> None:
    """Each named dataloader's data set can be found, has samples, and agrees with the model.

    Every image's annotation must exist; a sample of the pairs is read for annotation mode,
    label values against ``num_classes`` and image/annotation sizes
    (:mod:`mae_seg.datasets.dataset_check`).

    A missing directory fails deep inside the runner and an empty data set either fails
    there too or, where it gets through, leaves mmengine's ``InfiniteSampler`` spinning
    forever; both are reported here instead.

    Raises:
        ConfigError: naming the dataloader, the directory or file, and the fix.
    """
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    for key in loader_keys:
        loader = cfg.get(key)
        if not loader or 'dataset' not in loader:
            continue
        hint = f'prepare the data set or set {key}.dataset.data_root with --cfg-options'
        try:
            dataset, count = _count_samples(loader['dataset'])
        except FileNotFoundError as error:
            missing = error.filename or str(error)
            raise ConfigError(f'{key}: {missing} does not exist; {hint}') from error
        except Exception as error:  # noqa: BLE001 - the config's arguments, types and values
            message = ' '.join(str(error).split())
            raise ConfigError(
                f'{key}.dataset: building the data set: {type(error).__name__}: {message}'
            ) from error
        if count == 0:
            where = osp.join(
                getattr(dataset, 'data_root', '') or '',
                getattr(dataset, 'data_prefix', {}).get('img_path', ''),
            )
            suffix = getattr(dataset, 'img_suffix', '')
            raise ConfigError(f'{key}: no {suffix} images found in {where}; {hint}')
        problems, sampled = sampled_split_check(cfg, key)
        if problems:
            raise ConfigError(problems_line(key, problems, sampled))


def check_run_inputs(cfg: Config, training: bool) -> None:
    """Checkpoints (there, and fitting the model), config values and data sets of a
    training (with validation) or a test run.

    Raises:
        ConfigError: the first problem, in one line (``train.py --check`` lists them all).
        CheckpointError: a checkpoint cannot be read or does not fit the model.
    """
    from .config_values import config_value_problems
    from .weights import build_meta_model, check_weights_fit

    check_checkpoints(cfg, training)
    model = build_meta_model(cfg)
    check_weights_fit(cfg, training, model)
    problems = config_value_problems(cfg, model) if training else []
    if problems:
        raise ConfigError(problems[0])
    if training:
        loaders = ('train_dataloader',)
        if cfg.get('val_cfg') and cfg.get('val_evaluator'):
            loaders += ('val_dataloader',)
    else:
        loaders = ('test_dataloader',)
    check_datasets(cfg, loaders)
