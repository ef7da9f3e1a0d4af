"""Turn a config file and the options of ``tools/train.py`` / ``tools/test.py`` into a run."""

from __future__ import annotations

import logging
import os.path as osp
import traceback

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel
from mmengine.runner import find_latest_checkpoint
from mmseg.registry import MODELS

from ..compat import resolve_scoped_configs
from ..errors import ConfigError
from .checks import RUNNER_KEYS, check_config
from .device import accelerator_available, adapt_to_device

__all__ = ['is_tta_model', 'load_config', 'setup_test_config', 'setup_train_config']


def _file_being_read(error: BaseException) -> str | None:
    """The config file (the top one or a ``_base_``) mmengine's reader held when it failed."""
    name, tb = None, error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == '_file2dict':
            name = tb.tb_frame.f_locals.get('filename', name)
        tb = tb.tb_next
    return name if isinstance(name, str) else None


def _one_line(error: BaseException) -> str:
    """``Type: message`` of an exception raised while reading a config, with the config line
    of its traceback where there is one."""
    message = ' '.join(str(error).split())
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.endswith('.py')]
    line = ''
    for frame in reversed(frames):
        if 'site-packages' not in frame.filename and 'mmengine' not in frame.filename:
            line = f' ({frame.filename}, line {frame.lineno})'
            break
    return f'{type(error).__name__}: {message}{line}'


def _keys_holding(node, value, where: str = '') -> list[str]:
    """Config keys (dotted) whose value is ``value``."""
    found = []
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = ((str(index), item) for index, item in enumerate(node))
    else:
        return []
    for key, item in items:
        path = f'{where}.{key}' if where else str(key)
        if type(item) is type(value) and item == value:
            found.append(path)
        else:
            found += _keys_holding(item, value, path)
    return found


def _refuse_substituted_variables(cfg: Config, cfg_options: dict) -> None:
    """An option that sets a config variable (``data_root``, ``crop_size``) changes nothing:
    the file was run when it was read and the values computed from the variable are in the
    keys that used it. Keys a runner or tool reads are not variables.

    Raises:
        ConfigError: naming the variable and the keys that took its value.
    """
    for option in cfg_options:
        name = option.split('.')[0]
        value = cfg.get(name) if name not in RUNNER_KEYS else None
        if value is None or not isinstance(value, (str, int, float, tuple)):
            continue
        holders = [
            key for key in _keys_holding(cfg.to_dict(), value) if key.split('.')[0] in RUNNER_KEYS
        ]
        instead = ', '.join(holders[:6]) + (', ...' if len(holders) > 6 else '')
        where = f'set {instead} instead' if holders else 'set the keys that use it instead'
        raise ConfigError(
            f'{option}: {name} is a config variable, already substituted when the config was '
            f'read, so setting it changes nothing; {where}'
        )


def load_config(path: str, cfg_options: dict | None = None, check: bool = False) -> Config:
    """Read ``path`` and merge ``--cfg-options`` into it.

    ``check``: also make the config check of ``train.py --check``
    (:func:`mae_seg.runner.checks.check_config`) before anything is built from it.

    Raises:
        ConfigError: the file, or a ``_base_`` file, does not exist or cannot be read as
            Python (a syntax error, an undefined name), naming the file and line; with
            ``check``, the first problem the config check finds.
    """
    if not osp.isfile(path):
        raise ConfigError(f'config {path} does not exist')
    resolve_scoped_configs()  # mmseg:: bases, where setuptools no longer has pkg_resources
    try:
        cfg = Config.fromfile(path)
    except SyntaxError as error:
        # mmengine parses the text without its file name: the file is the one it was reading.
        name = _file_being_read(error) or path
        where = f'{name}, line {error.lineno}' if error.lineno else name
        raise ConfigError(f'config {where}: {error.msg}') from error
    except FileNotFoundError as error:
        missing = error.filename or ' '.join(str(error).split())
        raise ConfigError(f'config {path}: {missing} does not exist') from error
    except Exception as error:  # noqa: BLE001 - running the file: NameError, ImportError, ...
        raise ConfigError(f'config {path}: {_one_line(error)}') from error
    if cfg_options:
        _refuse_substituted_variables(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    if check:
        check_config(cfg)
    return cfg


def _set_work_dir(cfg: Config, config_path: str, work_dir: str | None) -> None:
    """Command line, else the config's ``work_dir``, else ``./work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def is_tta_model(model_cfg: dict) -> bool:
    """Whether ``model_cfg`` builds a test-time-augmentation wrapper such as ``SegTTAModel``."""
    model_type = model_cfg.get('type')
    model_class = MODELS.get(model_type) if isinstance(model_type, str) else model_type
    return isinstance(model_class, type) and issubclass(model_class, BaseTTAModel)


def _enable_amp(cfg: Config) -> None:
    """``--amp``: mmseg's rule, ``OptimWrapper`` becomes ``AmpOptimWrapper`` (dynamic scale)."""
    wrapper_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper_type == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.', logger='current')
        return
    if wrapper_type != 'OptimWrapper':
        raise ConfigError(
            f'--amp turns OptimWrapper into AmpOptimWrapper, but optim_wrapper.type is '
            f'{wrapper_type}; set mixed precision in the config instead'
        )
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


def setup_train_config(
    cfg: Config,
    config_path: str,
    work_dir: str | None = None,
    resume: bool = False,
    amp: bool = False,
    launcher: str = 'none',
    restarted: bool = False,
) -> Config:
    """Apply ``tools/train.py`` options as mmseg's ``train.py`` does, then fit the device.

    ``restarted``: a launcher restarted the run, which continues from its latest checkpoint,
    or, before it wrote one, starts again as the first attempt did (from ``load_from``);
    mmengine would take ``resume`` with ``load_from`` set to mean resuming from that file.

    Raises:
        ConfigError: the config is a test-only (TTA) config, ``--amp`` cannot apply, or
            mixed precision was asked for on a machine without a GPU.
    """
    if is_tta_model(cfg.model):
        raise ConfigError(
            f'{config_path} is a test-time augmentation config ({cfg.model.type}); '
            'train with the single-scale config it is derived from'
        )
    cfg.launcher = launcher
    _set_work_dir(cfg, config_path, work_dir)
    if amp:
        if not accelerator_available():
            raise ConfigError('--amp (mixed precision) needs a GPU and this machine has none')
        _enable_amp(cfg)
    if restarted and not resume:
        latest = find_latest_checkpoint(cfg.work_dir)
        resume = latest is not None
        if resume:
            cfg.load_from = latest
    cfg.resume = resume
    adapt_to_device(cfg, training=True)
    return cfg


def _enable_visualization(cfg: Config, show: bool, show_dir: str | None, wait_time: float) -> None:
    hooks = cfg.get('default_hooks') or {}
    if 'visualization' not in hooks:
        raise ConfigError(
            '--show/--show-dir need default_hooks.visualization '
            "(dict(type='SegVisualizationHook')) in the config"
        )
    if show_dir and osp.isfile(show_dir):
        raise ConfigError(f'--show-dir {show_dir} is a file; give a folder')
    if hooks['visualization'].get('type') in ('SegVisualizationHook', 'mmseg.SegVisualizationHook'):
        # mmseg's hook would build the training dataloader to name its images: see
        # TestSegVisualizationHook.
        hooks['visualization']['type'] = 'TestSegVisualizationHook'
    hooks['visualization']['draw'] = True
    if show:
        hooks['visualization']['show'] = True
        hooks['visualization']['wait_time'] = wait_time
    if show_dir:
        cfg.visualizer['save_dir'] = show_dir


def _enable_tta(cfg: Config, config_path: str) -> None:
    """``--tta``: test with ``tta_pipeline`` and ``tta_model`` wrapping the model."""
    if is_tta_model(cfg.model):
        print_log(
            f'{config_path} already tests with {cfg.model.type}; --tta changes nothing',
            logger='current',
            level=logging.WARNING,
        )
        return
    missing = [key for key in ('tta_model', 'tta_pipeline') if cfg.get(key) is None]
    if missing:
        raise ConfigError(f'--tta needs {" and ".join(missing)} in {config_path}')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model


def setup_test_config(
    cfg: Config,
    config_path: str,
    checkpoint: str,
    work_dir: str | None = None,
    tta: bool = False,
    show: bool = False,
    show_dir: str | None = None,
    wait_time: float = 2.0,
    out: str | None = None,
    launcher: str = 'none',
) -> Config:
    """Apply ``tools/test.py`` options as mmseg's ``test.py`` does, then fit the device.

    Raises:
        ConfigError: ``--tta`` or ``--show-dir`` is missing what it needs in the config.
    """
    cfg.launcher = launcher
    _set_work_dir(cfg, config_path, work_dir)
    cfg.load_from = checkpoint
    if show or show_dir:
        _enable_visualization(cfg, show, show_dir, wait_time)
    if tta:
        _enable_tta(cfg, config_path)
    if out is not None:
        cfg.test_evaluator['output_dir'] = out
        cfg.test_evaluator['keep_results'] = True
    adapt_to_device(cfg, training=False)
    return cfg
