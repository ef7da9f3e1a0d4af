"""NonFiniteLossHook: the rule (unit) and a run it stops (end to end, in process)."""

import importlib.util
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmseg.registry import HOOKS
from quick_start_kit import ShapesSpec, make_shapes_dataset

from mae_seg.engine import NonFiniteLossHook
from mae_seg.engine.hooks.finite_loss import non_finite_terms
from mae_seg.errors import NonFiniteLossError

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / 'configs/quick_start/mae-tiny_upernet_2xb4-400_shapes-128x128.py'


def fake_runner(tmp_path, wrapper_type, iteration):
    hub = MessageHub.get_instance(f'finite_loss_{tmp_path.name}')
    return SimpleNamespace(
        iter=iteration,
        work_dir=str(tmp_path),
        optim_wrapper=wrapper_type.__new__(wrapper_type),
        message_hub=hub,
    )


LOSSES_NAN = {
    'loss': torch.tensor(float('nan')),
    'decode.loss_ce': torch.tensor(0.7),
    'aux.loss_ce': torch.tensor(float('nan')),
    'decode.acc_seg': torch.tensor(50.0),
}


def test_non_finite_terms():
    assert non_finite_terms({'a': torch.tensor(1.0), 'b': torch.tensor(math.inf), 'c': 2.0}) == {
        'b': math.inf
    }


def test_finite_losses_pass(tmp_path):
    hook = NonFiniteLossHook()
    runner = fake_runner(tmp_path, OptimWrapper, 2)
    hook.after_train_iter(runner, 2, outputs={'loss': 0.5})
    hook.after_train_iter(runner, 3, outputs={'loss': torch.tensor(0.25)})
    assert hook.consecutive == 0


def test_fp32_message_names_iteration_and_terms(tmp_path):
    hook = NonFiniteLossHook()
    runner = fake_runner(tmp_path, OptimWrapper, 6)
    runner.message_hub.update_info('last_ckpt', 'work/iter_6.pth')
    with pytest.raises(NonFiniteLossError) as error:
        hook.after_train_iter(runner, 6, outputs=LOSSES_NAN)
    assert str(error.value) == (
        'non-finite loss at iteration 7: aux.loss_ce=nan; training stopped, '
        'work/iter_6.pth is the last checkpoint'
    )


def test_amp_allows_a_few_skipped_steps_in_a_row(tmp_path):
    hook = NonFiniteLossHook(amp_patience=2)
    finite = {'loss': torch.tensor(1.0)}
    for iteration in range(4):  # NaN, NaN, finite (resets), NaN, NaN: allowed
        outputs = finite if iteration == 2 else LOSSES_NAN
        hook.after_train_iter(fake_runner(tmp_path, AmpOptimWrapper, iteration), 0, outputs=outputs)
    hook.after_train_iter(fake_runner(tmp_path, AmpOptimWrapper, 4), 0, outputs=LOSSES_NAN)
    with pytest.raises(NonFiniteLossError, match=r'iteration 7 \(3 iterations in a row\)'):
        hook.after_train_iter(fake_runner(tmp_path, AmpOptimWrapper, 6), 0, outputs=LOSSES_NAN)


CONFIG = """
_base_ = [{quick!r}]
data_root = {data_root!r}
model = dict(pretrained=None)
train_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=6, val_interval=100)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2, max_keep_ckpts=1))
custom_hooks = [dict(type='NonFiniteLossHook'), dict(type='PoisonAuxiliaryHeadHook', at=4)]
"""


@HOOKS.register_module(force=True)
class PoisonAuxiliaryHeadHook(Hook):
    """Turns the auxiliary head's classifier into NaN before iteration ``at``."""

    def __init__(self, at):
        self.at = at

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.at:
            model = getattr(runner.model, 'module', runner.model)
            with torch.no_grad():
                model.auxiliary_head.conv_seg.weight.fill_(float('nan'))


def train_tool():
    spec = importlib.util.spec_from_file_location('train_tool', ROOT / 'tools/train.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_injected_nan_stops_the_run_with_one_line(tmp_path, capsys):
    data_root = make_shapes_dataset(
        tmp_path / 'ADEChallengeData2016', ShapesSpec(num_train=4, num_val=1, short_side=64)
    )
    config = tmp_path / 'nan.py'
    config.write_text(CONFIG.format(quick=str(QUICK), data_root=str(data_root)))
    work_dir = tmp_path / 'work'
    assert train_tool().main([str(config), '--work-dir', str(work_dir)]) == 1

    error = capsys.readouterr().err.strip().splitlines()
    print(error[-1])
    assert error[-1] == (
        f'train.py: error: non-finite loss at iteration 4: aux.loss_ce=nan; training stopped, '
        f'{work_dir}/iter_2.pth is the last checkpoint'
    )
    # Iteration 4's spoiled weights were never saved; resume picks iteration 2's.
    assert sorted(p.name for p in work_dir.glob('*.pth')) == ['iter_2.pth']
    assert (work_dir / 'last_checkpoint').read_text() == f'{work_dir}/iter_2.pth'
    state = torch.load(work_dir / 'iter_2.pth', weights_only=True)['state_dict']
    assert all(torch.isfinite(value).all() for value in state.values())
