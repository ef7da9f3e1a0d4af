"""Running training and tests from configs: what ``tools/train.py`` and ``tools/test.py``
call. Config loading, the checks made before a run is built (:mod:`.checks`), fitting a
recipe to the machine (:mod:`.device`), checkpoints a run loads (:mod:`.weights`),
restarts (:mod:`.restarts`), and the run itself (:mod:`.run`)."""

from .checks import check_checkpoints, check_config, check_datasets, check_run_inputs, preflight
from .config import is_tta_model, load_config, setup_test_config, setup_train_config
from .device import (
    accelerator_available,
    adapt_to_device,
    init_process_group_on_cpu,
    process_group,
)
from .restarts import (
    claim_stop,
    deterministic_failure,
    record_failure,
    record_stop,
    restart_count,
    stop_reason,
)
from .run import TrainSummary, build_runner, test, train

__all__ = [
    'TrainSummary',
    'accelerator_available',
    'adapt_to_device',
    'build_runner',
    'check_checkpoints',
    'check_config',
    'check_datasets',
    'check_run_inputs',
    'claim_stop',
    'deterministic_failure',
    'init_process_group_on_cpu',
    'is_tta_model',
    'load_config',
    'preflight',
    'process_group',
    'record_failure',
    'record_stop',
    'restart_count',
    'setup_test_config',
    'setup_train_config',
    'stop_reason',
    'test',
    'train',
]
