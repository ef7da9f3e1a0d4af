"""Running training and tests from configs: what ``tools/train.py`` and ``tools/test.py`` call."""

from .checks import check_checkpoints, check_datasets, check_run_inputs
from .config import is_tta_model, load_config, setup_test_config, setup_train_config
from .device import (
    accelerator_available,
    adapt_to_device,
    init_process_group_on_cpu,
    process_group,
)
from .errors import ConfigError
from .preflight import preflight
from .restarts import claim_stop, record_failure, restart_count, stop_reason
from .runner import TrainSummary, build_runner, test, train

__all__ = [
    'ConfigError',
    'TrainSummary',
    'accelerator_available',
    'adapt_to_device',
    'build_runner',
    'check_checkpoints',
    'claim_stop',
    'check_datasets',
    'check_run_inputs',
    'init_process_group_on_cpu',
    'is_tta_model',
    'load_config',
    'preflight',
    'process_group',
    'record_failure',
    'restart_count',
    'setup_test_config',
    'setup_train_config',
    'stop_reason',
    'test',
    'train',
]
