"""Checks of a run's config, checkpoints and data sets, made before minutes go into building it.

``tools/train.py --check`` reports every mistake a training config holds, found in seconds;
every tool makes the config part of it (:func:`check_config`) before it builds anything.
mmengine reports a wrong type or argument when it builds the part that holds it, one at a
time, often after the data sets and hundreds of log lines; a misspelt top-level key
(``optim_wraper``) is not reported at all. Here the config is walked once: every ``type``
is looked up in the registry that will build it and every argument is compared with the
signature of the class that receives it, each problem with a "did you mean"; then, if the
walk found nothing, the model is built on the meta device (no memory, no weights read)
with its optimizer wrapper and parameter schedulers, as the run builds them.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import os.path as osp
from collections.abc import Iterator
from functools import partial

import torch
from mmengine.config import Config
from mmengine.dataset import BaseDataset
from mmengine.registry import Registry, init_default_scope
from mmseg.models.segmentors import CascadeEncoderDecoder, EncoderDecoder
from mmseg.registry import (
    DATA_SAMPLERS,
    DATASETS,
    HOOKS,
    LOG_PROCESSORS,
    LOOPS,
    METRICS,
    MODELS,
    OPTIM_WRAPPERS,
    OPTIMIZERS,
    PARAM_SCHEDULERS,
    TRANSFORMS,
    VISBACKENDS,
    VISUALIZERS,
    WEIGHT_INITIALIZERS,
)

from ..datasets.dataset_check import problems_line, sampled_split_check
from ..engine.resume import ExactResumeIterBasedTrainLoop, resumable_dataloader_cfg
from ..errors import CheckpointError, ConfigError
from ..models.segmentors import BatchedSlideEncoderDecoder
from .config_values import config_value_problems, layer_decay_problems
from .device import AMP_ONLY_KEYS, accelerator_available
from .weights import build_meta_model, check_weights_fit, meta_build

__all__ = [
    'build_problems',
    'check_checkpoints',
    'check_config',
    'check_datasets',
    'check_run_inputs',
    'config_problems',
    'preflight',
    'unknown_runner_keys',
]

# Top-level keys that mmengine's Runner, mmseg's tools or ours read.
RUNNER_KEYS = (
    'model', 'work_dir', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg',
    'val_cfg', 'test_cfg', 'auto_scale_lr', 'optim_wrapper', 'param_scheduler',
    'val_evaluator', 'test_evaluator', 'default_hooks', 'custom_hooks', 'data_preprocessor',
    'load_from', 'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level', 'visualizer',
    'default_scope', 'randomness', 'experiment_name', 'model_wrapper_cfg', 'compile',
    'activation_checkpointing', 'efficient_conv_bn_eval', 'custom_imports', 'tta_model',
    'tta_pipeline', 'runner_type', 'load_from_reinit',
)  # fmt: skip
# Variables of mmseg's configs as close to a runner key as a typo is (train_pipeline and
# tta_pipeline): never reported as typos.
CONFIG_VARIABLES = {
    'custom_keys', 'models', 'runner', 'work_root', 'train_pipeline', 'val_pipeline',
    'test_pipeline',
}  # fmt: skip
# Arguments the builders pass themselves, never written in a config.
INJECTED = {'runner', 'dataloader', 'evaluator', 'dataset', 'seed', 'optimizer', 'params'}
# Keys the builder takes out before the class sees the rest.
POPPED = {OPTIM_WRAPPERS: {'constructor', 'paramwise_cfg'}, LOOPS: {'by_epoch'}}

_CONVERT_HINT = (
    'convert the MAE weights with tools/model_converters/mae2mmseg.py '
    '(docs/converting_checkpoints.md) or point it elsewhere with --cfg-options'
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


def _closest(word: str, choices) -> str | None:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return match[0] if match else None


def _did_you_mean(word: str, choices) -> str:
    match = _closest(word, choices)
    return f' (did you mean {match!r}?)' if match else ''


def unknown_runner_keys(cfg: Config) -> list[str]:
    """Top-level keys close to a key the runner reads: typos it ignores (``trian_cfg``,
    ``load_form``, ``optimizer_wrapper``: difflib similarity 0.75 or more).

    Other unknown keys are config variables (``crop_size``, ``train_pipeline``) and fine;
    those of mmseg's configs that come that close are in ``CONFIG_VARIABLES``.
    """
    problems = []
    for key in cfg.keys():
        if key in RUNNER_KEYS:
            continue
        if key in CONFIG_VARIABLES:
            continue
        match = difflib.get_close_matches(key, RUNNER_KEYS, n=1, cutoff=0.75)
        if match:
            problems.append(f'{key}: not a key the runner reads (did you mean {match[0]!r}?)')
    return problems


def _registry_names(registry: Registry) -> set[str]:
    names = set()
    while registry is not None:
        registry.import_from_location()
        names.update(registry.module_dict)
        registry = registry.parent
    return names


def _accepted_arguments(target) -> set[str] | None:
    """Keyword arguments ``target`` accepts, following ``**kwargs`` up the class's MRO.

    None when any argument goes (a ``**kwargs`` that reaches no closed signature).
    """
    functions = [target] if not isinstance(target, type) else []
    if isinstance(target, type):
        functions = [c.__dict__['__init__'] for c in target.__mro__ if '__init__' in c.__dict__]
    names: set[str] = set()
    for function in functions:
        if function in (object.__init__, torch.nn.Module.__init__):
            # A **kwargs that no base takes is consumed elsewhere (RandomResize's go to Resize).
            return None if isinstance(target, type) and functions[0] is not function else names
        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):
            return None
        names.update(p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            return names - {'self'}
    return None


def _check_node(node: dict, where: str, registry: Registry, check_keys: bool) -> Iterator[str]:
    """Problems of one ``dict(type=...)``: an unknown type, or arguments nobody takes."""
    node_type = node.get('type')
    if isinstance(node_type, str):
        target = registry.get(node_type)
        if target is None:
            match = _closest(node_type, _registry_names(registry))
            known = f' (did you mean {match!r}?)' if match else ''
            yield f'{where}.type: {node_type!r} is not a registered {registry.name} type{known}'
            # The arguments are checked against the type meant, so one run shows all.
            target = registry.get(match) if match else None
    else:
        target = node_type
    if not check_keys or target is None:
        return
    accepted = _accepted_arguments(target)
    if accepted is None:
        return
    accepted |= POPPED.get(registry, set())
    for key in node:
        if key != 'type' and key not in accepted and key not in INJECTED and key != '_scope_':
            name = getattr(target, '__name__', str(target))
            yield f'{where}.{key}: {name} takes no argument {key!r}{_did_you_mean(key, accepted)}'


def _walk_model(node, where: str) -> Iterator[str]:
    """A model config: modules checked fully, ``*_cfg`` helpers (norm, act, init) by type."""
    if isinstance(node, (list, tuple)):
        for index, item in enumerate(node):
            yield from _walk_model(item, f'{where}[{index}]')
        return
    if not isinstance(node, dict):
        return
    leaf = where.rsplit('.', 1)[-1]
    if 'type' in node:
        registry = WEIGHT_INITIALIZERS if leaf == 'init_cfg' else MODELS
        yield from _check_node(node, where, registry, check_keys=not leaf.endswith('_cfg'))
    for key, value in node.items():
        if isinstance(value, (dict, list, tuple)) and key != 'type':
            yield from _walk_model(value, f'{where}.{key}')


def _walk_typed(node, where: str, registry: Registry) -> Iterator[str]:
    """A list or dict of parts built by one registry (hooks, transforms, metrics)."""
    if isinstance(node, (list, tuple)):
        for index, item in enumerate(node):
            yield from _walk_typed(item, f'{where}[{index}]', registry)
    elif isinstance(node, dict) and 'type' in node:
        yield from _check_node(node, where, registry, check_keys=True)
        for nested in ('transforms',):  # TestTimeAug, RandomChoice, ...
            if nested in node:
                yield from _walk_typed(node[nested], f'{where}.{nested}', registry)


def _walk_dataloader(loader: dict, where: str) -> Iterator[str]:
    dataset = loader.get('dataset') or {}
    yield from _walk_typed(loader.get('sampler'), f'{where}.sampler', DATA_SAMPLERS)
    while isinstance(dataset, dict):
        yield from _check_node(dataset, f'{where}.dataset', DATASETS, check_keys=True)
        yield from _walk_typed(dataset.get('pipeline'), f'{where}.dataset.pipeline', TRANSFORMS)
        dataset, where = dataset.get('dataset'), f'{where}.dataset'  # wrappers


def _loop_node(cfg: Config, key: str, default: str) -> dict | None:
    node = cfg.get(key)
    if not node:
        return None
    node = dict(node)
    if 'type' not in node:
        by_epoch = node.get('by_epoch', False)
        node['type'] = 'EpochBasedTrainLoop' if key == 'train_cfg' and by_epoch else default
    return node


def _loop_dataloader_problems(cfg: Config) -> list[str]:
    """What the train loop asks of its dataloader (ours needs mmseg's InfiniteSampler)."""
    loop_type = (_loop_node(cfg, 'train_cfg', 'IterBasedTrainLoop') or {}).get('type')
    loop_class = LOOPS.get(loop_type) if isinstance(loop_type, str) else loop_type
    exact = isinstance(loop_class, type) and issubclass(loop_class, ExactResumeIterBasedTrainLoop)
    if not exact or not cfg.get('train_dataloader'):
        return []
    try:
        resumable_dataloader_cfg(cfg.train_dataloader)
    except ValueError as error:
        return [f'train_dataloader.sampler: {error}']
    return []


def _test_cfg_problems(model_cfg) -> Iterator[str]:
    """``model.test_cfg`` of an ``EncoderDecoder``: what it reads, nothing else (mmseg reads
    ``mode``, ``crop_size`` and ``stride`` with attribute access and asserts the mode only
    when predicting, and ignores any other key)."""
    if not isinstance(model_cfg, dict) or not isinstance(model_cfg.get('test_cfg'), dict):
        return
    model_type = model_cfg.get('type')
    target = MODELS.get(model_type) if isinstance(model_type, str) else model_type
    # The cascade's point head reads test_cfg keys of its own (subdivision_steps, ...).
    if not isinstance(target, type) or not issubclass(target, EncoderDecoder):
        return
    if issubclass(target, CascadeEncoderDecoder):
        return
    accepted = {'mode', 'crop_size', 'stride'}
    if issubclass(target, BatchedSlideEncoderDecoder):
        accepted.add('window_batch_size')
    test_cfg = model_cfg['test_cfg']
    for key in test_cfg:
        if key not in accepted:
            yield (
                f'model.test_cfg.{key}: {target.__name__} reads no test_cfg key {key!r}'
                f'{_did_you_mean(key, accepted)}'
            )
    mode = test_cfg.get('mode', 'whole')
    if mode not in ('whole', 'slide'):
        yield (
            f"model.test_cfg.mode: {mode!r} is not 'whole' or 'slide'"
            f'{_did_you_mean(str(mode), ("whole", "slide"))}'
        )
    elif mode == 'slide':
        for key in ('crop_size', 'stride'):
            if key not in test_cfg:
                yield f"model.test_cfg.{key}: slide mode needs it (a window's (height, width))"


def _dataloader_number_problems(loader: dict, where: str) -> Iterator[str]:
    """``batch_size`` and ``num_workers``: the DataLoader fails on them only when built."""
    for key, least in (('batch_size', 1), ('num_workers', 0)):
        value = loader.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            what = 'a positive integer' if least else 'an integer, 0 or more'
            yield f'{where}.{key}: {value!r} is not {what}'


def config_problems(cfg: Config) -> list[str]:
    """Unknown types and arguments anywhere a training or test run builds from, and a
    layer-decay depth that disagrees with the backbone's."""
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    problems = list(_walk_model(cfg.get('model'), 'model'))
    problems += _test_cfg_problems(cfg.get('model'))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(key):
            problems += _walk_dataloader(cfg[key], key)
            problems += _dataloader_number_problems(cfg[key], key)
    for key, default in (('train_cfg', 'IterBasedTrainLoop'), ('val_cfg', 'ValLoop')):
        node = _loop_node(cfg, key, default)
        if node is not None:
            problems += _check_node(node, key, LOOPS, check_keys=True)
    problems += _loop_dataloader_problems(cfg)
    wrapper = cfg.get('optim_wrapper') or {}
    problems += _walk_typed(wrapper, 'optim_wrapper', OPTIM_WRAPPERS)
    problems += _walk_typed(wrapper.get('optimizer'), 'optim_wrapper.optimizer', OPTIMIZERS)
    problems += layer_decay_problems(cfg)
    problems += _walk_typed(cfg.get('param_scheduler'), 'param_scheduler', PARAM_SCHEDULERS)
    for name, hook in (cfg.get('default_hooks') or {}).items():
        problems += _walk_typed(hook, f'default_hooks.{name}', HOOKS)
    problems += _walk_typed(cfg.get('custom_hooks'), 'custom_hooks', HOOKS)
    problems += _walk_typed(cfg.get('val_evaluator'), 'val_evaluator', METRICS)
    problems += _walk_typed(cfg.get('visualizer'), 'visualizer', VISUALIZERS)
    problems += _walk_typed(cfg.get('vis_backends'), 'vis_backends', VISBACKENDS)
    problems += _walk_typed(cfg.get('log_processor'), 'log_processor', LOG_PROCESSORS)
    return problems


def _count_images(cfg: Config, key: str) -> int | None:
    try:
        return _count_samples(cfg[key]['dataset'])[1]
    except Exception:  # noqa: BLE001 - a count for the summary line only
        return None


def build_problems(cfg: Config) -> tuple[list[str], str]:
    """Build the model on the meta device, its optimizer wrapper and parameter schedulers.

    Returns:
        the problems (one at most: building stops at the first) and, without problems, a
        one-line summary of what was built.
    """
    from mmengine.optim import build_optim_wrapper

    init_default_scope(cfg.get('default_scope', 'mmseg'))
    wrapper_cfg = copy.deepcopy(cfg.optim_wrapper)
    if wrapper_cfg.get('type') == 'AmpOptimWrapper' and not accelerator_available():
        # It refuses to be built without a GPU; adapt_to_device reports that case itself.
        wrapper_cfg.type = 'OptimWrapper'
        for key in AMP_ONLY_KEYS:
            wrapper_cfg.pop(key, None)
    try:
        with meta_build():
            model = MODELS.build(copy.deepcopy(cfg.model))
            wrapper = build_optim_wrapper(model, wrapper_cfg)
            schedulers = cfg.get('param_scheduler') or []
            schedulers = schedulers if isinstance(schedulers, list) else [schedulers]
            for scheduler in schedulers:
                PARAM_SCHEDULERS.build(
                    dict(scheduler), default_args=dict(optimizer=wrapper.optimizer)
                )
    except Exception as error:  # noqa: BLE001 - any build failure is the user's to see
        message = ' '.join(str(error).split())
        return [f'building the model and optimizer: {type(error).__name__}: {message}'], ''
    loop = _loop_node(cfg, 'train_cfg', 'IterBasedTrainLoop') or {}
    backbone = getattr(model, 'backbone', None)
    name = type(model).__name__ + (f' ({type(backbone).__name__})' if backbone else '')
    images = [
        f'{count} {name} images'
        for key, name in (('train_dataloader', 'training'), ('val_dataloader', 'validation'))
        if cfg.get(key) and (count := _count_images(cfg, key)) is not None
    ]
    summary = [
        f'{name}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters',
        f'{type(wrapper.optimizer).__name__} in {type(wrapper).__name__}, '
        f'{len(schedulers)} parameter schedulers',
        f'{loop.get("type")} to {loop.get("max_iters")} iterations',
        ', '.join(images),
    ]
    summary = '; '.join(part for part in summary if part)
    return [], summary


def _weight_and_value_problems(cfg: Config) -> list[str]:
    """Checkpoints that do not fit the model, and config values that disagree (the model
    built once more on the meta device: :func:`build_problems` found it buildable)."""
    model = build_meta_model(cfg)
    try:
        check_weights_fit(cfg, True, model)
        problems = []
    except (ConfigError, CheckpointError) as error:
        problems = [str(error)]
    return problems + config_value_problems(cfg, model)


def check_config(cfg: Config) -> None:
    """The config check of ``train.py --check`` that every tool makes before it builds.

    Raises:
        ConfigError: the first problem, in one line, and how many more there are.
    """
    problems = unknown_runner_keys(cfg) + config_problems(cfg)
    if problems:
        more = f' ({len(problems) - 1} more problems)' if len(problems) > 1 else ''
        raise ConfigError(problems[0] + more)


def preflight(cfg: Config) -> tuple[list[str], str]:
    """What ``tools/train.py --check`` reports.

    Returns:
        every problem found, one line each (empty when all is well), and a one-line
        summary of what was built.
    """
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    problems = unknown_runner_keys(cfg) + config_problems(cfg)
    loaders = ['train_dataloader']
    if cfg.get('val_cfg') and cfg.get('val_evaluator'):
        loaders.append('val_dataloader')
    checks = [partial(check_checkpoints, cfg, True)]
    # A data set is built only from a dataloader config without problems of its own.
    checks += [
        partial(check_datasets, cfg, (key,))
        for key in loaders
        if not any(problem.startswith(f'{key}.') for problem in problems)
    ]
    for check in checks:
        try:
            check()
        except ConfigError as error:
            problems.append(str(error))
    if problems:
        return problems, ''
    problems, summary = build_problems(cfg)
    if not problems:
        problems = _weight_and_value_problems(cfg)
    return problems, '' if problems else summary
