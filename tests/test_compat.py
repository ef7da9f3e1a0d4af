"""mmengine checkpoints load with torch's default ``weights_only=True`` once mae_seg is imported."""

import pickle
import subprocess
import sys

import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

import mae_seg  # noqa: F401  (the allow-list: tests/conftest.py calls setup_openmmlab)


class _Regressor(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, inputs, target=None, mode='loss'):
        prediction = self.linear(inputs)
        if mode == 'loss':
            return {'loss': ((prediction.squeeze(1) - target) ** 2).mean()}
        return prediction


class _Points(Dataset):
    metainfo = {'classes': ('a', 'b'), 'palette': [[1, 2, 3], [4, 5, 6]]}

    def __len__(self):
        return 16

    def __getitem__(self, index):
        point = torch.linspace(-1, 1, 4) * (index + 1) / 16
        return {'inputs': point, 'target': point.max()}


def _runner(work_dir, max_iters, **kwargs):
    return Runner(
        model=_Regressor(),
        work_dir=str(work_dir),
        train_dataloader={
            'dataset': _Points(),
            'sampler': {'type': 'DefaultSampler', 'shuffle': True},
            'batch_size': 4,
            'collate_fn': {'type': 'default_collate'},
        },
        optim_wrapper={'optimizer': {'type': 'AdamW', 'lr': 0.01}},
        param_scheduler=[{'type': 'PolyLR', 'by_epoch': False, 'begin': 0, 'end': 8}],
        train_cfg={'by_epoch': False, 'max_iters': max_iters},
        default_hooks={
            'checkpoint': {'type': 'CheckpointHook', 'interval': 2, 'by_epoch': False},
            'logger': {'type': 'LoggerHook', 'interval': 1},
        },
        randomness={'seed': 0},
        **kwargs,
    )


@pytest.fixture(scope='module')
def trained_work_dir(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('run')
    _runner(work_dir, max_iters=4).train()
    return work_dir


def test_plain_torch_refuses_an_mmengine_checkpoint(trained_work_dir):
    """Without the allow-list torch >= 2.6 rejects mmengine's message hub: the shim is needed."""
    code = (
        'import torch, pickle, sys\n'
        f'try:\n    torch.load({str(trained_work_dir / "iter_4.pth")!r})\n'
        'except pickle.UnpicklingError as error:\n    print("refused:", error)\n'
    )
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True).stdout
    assert out.startswith('refused:')


def test_checkpoint_round_trip_with_weights_only(trained_work_dir):
    checkpoint = torch.load(trained_work_dir / 'iter_4.pth', weights_only=True)
    assert checkpoint['meta']['iter'] == 4
    assert checkpoint['meta']['dataset_meta']['classes'] == ('a', 'b')
    history = checkpoint['message_hub']['log_scalars']['train/loss']
    assert isinstance(history, HistoryBuffer)
    assert len(history.data[0]) == 4
    assert history.mean() == pytest.approx(history.data[0].mean())


def test_resume_restores_weights_iteration_and_logs(trained_work_dir, tmp_path):
    saved = torch.load(trained_work_dir / 'iter_4.pth', weights_only=True)
    checkpoint = str(trained_work_dir / 'iter_4.pth')
    runner = _runner(tmp_path, max_iters=4, resume=True, load_from=checkpoint)
    runner.load_or_resume()
    assert runner.iter == 4
    for name, value in runner.model.state_dict().items():
        torch.testing.assert_close(value, saved['state_dict'][name], rtol=0, atol=0)
    saved_loss = saved['message_hub']['log_scalars']['train/loss']
    assert runner.message_hub.get_scalar('train/loss').current() == saved_loss.current()


def test_getattr_stand_in_refuses_anything_but_statistics_methods(tmp_path):
    class _Gadget:
        def __reduce__(self):
            return getattr, (HistoryBuffer, '__init__')

    path = tmp_path / 'gadget.pth'
    torch.save({'x': _Gadget()}, path)
    with pytest.raises(pickle.UnpicklingError, match='only HistoryBuffer statistics methods'):
        torch.load(path, weights_only=True)


def test_unknown_classes_are_still_refused(tmp_path):
    path = tmp_path / 'custom.pth'
    torch.save({'x': _Points()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
