"""Training curves from mmengine's scalars.json: reading, joining runs, plotting, bad input."""

import json
import time

import pytest
import torch
from matplotlib.figure import Figure
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from mae_seg.errors import CurvesError
from mae_seg.visualization import (
    join_runs,
    load_curves,
    plot_curves,
    read_scalars,
    scalar_logs,
)

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def train_line(step, loss, lr=0.01):
    """What mmengine's LoggerHook writes after a training iteration (mmseg's loss terms)."""
    return {
        'base_lr': 0.01, 'lr': lr, 'data_time': 0.01, 'loss': loss,
        'decode.loss_ce': 0.7 * loss, 'decode.acc_seg': 50.0, 'aux.loss_ce': 0.3 * loss,
        'time': 0.2, 'iter': step, 'memory': 120, 'step': step,
    }  # fmt: skip


def val_line(step, miou):
    return {'aAcc': 80.0, 'mIoU': miou, 'mAcc': 60.0, 'data_time': 0.01, 'time': 0.1, 'step': step}


def write_run(work_dir, timestamp, lines):
    path = work_dir / timestamp / 'vis_data' / 'scalars.json'
    path.parent.mkdir(parents=True)
    path.write_text(''.join(json.dumps(line) + '\n' for line in lines))
    return path


def test_training_and_validation_lines_are_told_apart(tmp_path):
    path = write_run(tmp_path, '20260101_120000', [train_line(1, 2.0), val_line(1, 40.0)])
    run = read_scalars(path)
    assert run.train['loss'] == [(1, 2.0)] and run.train['aux.loss_ce'] == [(1, 0.6)]
    assert run.val == {'aAcc': [(1, 80.0)], 'mIoU': [(1, 40.0)], 'mAcc': [(1, 60.0)]}
    names = ['aux.loss_ce', 'base_lr', 'decode.acc_seg', 'decode.loss_ce', 'loss', 'lr']
    assert sorted(run.train) == names  # no step, iter or timings


def test_resumed_run_replaces_the_iterations_it_trained_again(tmp_path):
    """Stopped after iteration 6 with a checkpoint at 4, resumed there: 5 and 6 come again."""
    first = [train_line(i, 10.0 + i) for i in range(1, 7)] + [val_line(4, 30.0)]
    second = [train_line(i, 20.0 + i) for i in range(5, 11)]
    second += [val_line(8, 50.0), val_line(10, 55.0)]
    # Created newest first: the order comes from the timestamps, not the file system.
    write_run(tmp_path, '20260102_090000', second)
    write_run(tmp_path, '20260101_230000', first)
    curves = load_curves(tmp_path)
    assert [path.parts[-3] for path in curves.sources] == ['20260101_230000', '20260102_090000']
    expected = [(1, 11.0), (2, 12.0), (3, 13.0), (4, 14.0)] + [(i, 20.0 + i) for i in range(5, 11)]
    assert curves.train['loss'] == expected
    assert curves.validations('mIoU') == [(4, 30.0), (8, 50.0), (10, 55.0)]
    assert curves.loss_names == ['loss', 'aux.loss_ce', 'decode.loss_ce']
    assert curves.lr_names == ['lr'] and curves.iterations == (1, 10)
    assert curves.summary() == (
        'loss (loss, aux.loss_ce, decode.loss_ce), lr and val mIoU over iterations 1-10 from '
        '2 runs; 3 validations, last mIoU 55.00 at iteration 10'
    )


def test_later_run_replaces_points_it_did_not_log_again(tmp_path):
    """Logged every 2 iterations, then resumed at 4 logging every 3: 6 and 8 are not kept."""
    write_run(tmp_path, '20260101_000000', [train_line(i, 1.0) for i in (2, 4, 6, 8)])
    write_run(tmp_path, '20260101_000100', [train_line(i, 2.0) for i in (5, 8, 11)])
    assert load_curves(tmp_path).train['loss'] == [
        (2, 1.0),
        (4, 1.0),
        (5, 2.0),
        (8, 2.0),
        (11, 2.0),
    ]


def test_restarted_run_replaces_the_whole_earlier_training(tmp_path):
    first = [train_line(i, 5.0) for i in range(1, 9)] + [val_line(8, 40.0)]
    write_run(tmp_path, '20260101_000000', first)
    write_run(tmp_path, '20260101_010000', [train_line(i, 1.0) for i in range(1, 4)])
    curves = load_curves(tmp_path)
    assert curves.train['loss'] == [(1, 1.0), (2, 1.0), (3, 1.0)]
    assert curves.val == {} and curves.validations('mIoU') == []


def test_run_without_validation_has_no_metric_panel(tmp_path):
    write_run(tmp_path, '20260101_000000', [train_line(i, 1.0 / i) for i in range(1, 5)])
    curves = load_curves(tmp_path)
    assert curves.summary() == (
        'loss (loss, aux.loss_ce, decode.loss_ce), lr over iterations 1-4 from 1 run; '
        'no validation in the log, so no mIoU panel'
    )
    out = plot_curves(curves, tmp_path / 'curves.png')
    with Image.open(out) as image:
        assert image.format == 'PNG' and image.size == (1000, 400)  # two 5-inch panels


def test_plot_is_a_png_with_three_panels(tmp_path):
    lines = [train_line(i, 1.0 / i) for i in range(1, 5)] + [val_line(4, 12.5)]
    write_run(tmp_path, '20260101_000000', lines)
    out = plot_curves(load_curves(tmp_path), tmp_path / 'plots' / 'run.png', title='a run')
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    with Image.open(out) as image:
        assert image.size == (1500, 400)
        # Not blank: the curves are drawn in colour on white.
        assert len(image.convert('RGB').getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50
    assert sorted(p.name for p in out.parent.iterdir()) == ['run.png']


def test_failed_plot_leaves_no_file(tmp_path, monkeypatch):
    write_run(tmp_path, '20260101_000000', [train_line(1, 1.0)])
    out = tmp_path / 'curves.png'

    def half_write(self, path, **kwargs):
        path.write_bytes(PNG_SIGNATURE)
        raise OSError('disk full')

    monkeypatch.setattr(Figure, 'savefig', half_write)
    with pytest.raises(OSError, match='disk full'):
        plot_curves(load_curves(tmp_path), out)
    assert list(tmp_path.glob('*.png*')) == [] and list(tmp_path.glob('.curves*')) == []


def test_timestamp_folder_alone_and_other_folders(tmp_path):
    path = write_run(tmp_path, '20260101_000000', [train_line(1, 1.0)])
    write_run(tmp_path, 'show_dir', [train_line(1, 9.0)])  # not a run of this work dir
    assert scalar_logs(tmp_path) == [path]
    assert scalar_logs(tmp_path / '20260101_000000') == [path]


@pytest.mark.parametrize(
    'bad_line, what',
    [
        ('{"loss": 1.0, "lr": 0.01, "it', 'not JSON'),
        ('', 'blank'),
        ('[1, 2]', 'not an mmengine scalar line'),
        ('{"loss": 1.0, "iter": 2}', 'not an mmengine scalar line'),
        ('{"loss": 1.0, "iter": 2, "step": "2"}', 'not an mmengine scalar line'),
    ],
)
def test_corrupt_line_is_named_with_the_fix(tmp_path, bad_line, what):
    path = write_run(tmp_path, '20260101_000000', [train_line(1, 1.0)])
    path.write_text(path.read_text() + bad_line + '\n' + json.dumps(train_line(3, 1.0)) + '\n')
    with pytest.raises(CurvesError, match=what) as error:
        load_curves(tmp_path)
    assert str(error.value).startswith(f'line 2 of {path} is ')
    assert str(error.value).endswith(
        f'remove line 2 of {path} (a run killed while writing leaves a partial line)'
    )


def test_bad_work_dirs(tmp_path):
    with pytest.raises(CurvesError, match=f'{tmp_path / "nope"} does not exist'):
        load_curves(tmp_path / 'nope')
    (tmp_path / 'file').write_text('')
    with pytest.raises(CurvesError, match='is not a directory'):
        load_curves(tmp_path / 'file')
    (tmp_path / '20260101_000000' / 'vis_data').mkdir(parents=True)
    with pytest.raises(CurvesError, match=r'has no <timestamp>/vis_data/scalars.json; .*LocalVis'):
        load_curves(tmp_path)


def test_empty_logs(tmp_path):
    """A run stopped before its first logging interval: skipped beside others, else an error."""
    write_run(tmp_path, '20260101_000000', [])
    with pytest.raises(CurvesError, match='hold no training loss: .*logger.interval'):
        load_curves(tmp_path)
    write_run(tmp_path, '20251231_000000', [train_line(1, 1.0)])
    assert load_curves(tmp_path).train['loss'] == [(1, 1.0)]


def test_metric_not_among_the_validation_scalars(tmp_path):
    write_run(tmp_path, '20260101_000000', [train_line(1, 1.0), val_line(1, 3.0)])
    curves = load_curves(tmp_path)
    assert curves.validations('mAcc') == [(1, 60.0)]
    with pytest.raises(CurvesError, match=r"no 'mDice' \(they have aAcc, mAcc, mIoU\); choose"):
        plot_curves(curves, tmp_path / 'c.png', metric='mDice')
    with pytest.raises(CurvesError, match='not a .png file name'):
        plot_curves(curves, tmp_path / 'c.jpg')
    assert list(tmp_path.glob('c.*')) == []


def test_join_of_no_runs_is_an_error():
    with pytest.raises(CurvesError, match='hold no training loss'):
        join_runs([])


# A real run: mmengine's Runner, LoggerHook and LocalVisBackend write the logs.


class _Regressor(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, inputs, target=None, mode='loss'):
        prediction = self.linear(inputs).squeeze(1)
        if mode == 'loss':
            return {'loss': ((prediction - target) ** 2).mean()}
        return [(prediction - target).abs()]


class _Points(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, index):
        point = torch.linspace(-1, 1, 4) * (index + 1) / 8
        return {'inputs': point, 'target': point.max()}


class _ErrorAsMIoU(BaseMetric):
    """Stands in for mmseg's IoUMetric: a number named mIoU after each validation."""

    def process(self, data_batch, data_samples):
        self.results.extend(data_samples[0].tolist())

    def compute_metrics(self, results):
        return {'mIoU': 100.0 / (1.0 + sum(results))}


def _runner(work_dir, max_iters, **kwargs):
    def loader(sampler):
        return {
            'dataset': _Points(),
            'sampler': {'type': sampler, 'shuffle': False},
            'batch_size': 4,
            'collate_fn': {'type': 'default_collate'},
        }

    return Runner(
        model=_Regressor(),
        work_dir=str(work_dir),
        train_dataloader=loader('InfiniteSampler'),
        val_dataloader=loader('DefaultSampler'),
        val_evaluator=[_ErrorAsMIoU()],
        val_cfg={},
        optim_wrapper={'optimizer': {'type': 'SGD', 'lr': 0.1}},
        param_scheduler=[{'type': 'PolyLR', 'by_epoch': False, 'begin': 0, 'end': 6}],
        train_cfg={'by_epoch': False, 'max_iters': max_iters, 'val_interval': 2},
        default_hooks={
            'checkpoint': {
                'type': 'CheckpointHook',
                'interval': 2,
                'by_epoch': False,
                'save_last': False,
            },
            'logger': {'type': 'LoggerHook', 'interval': 1, 'log_metric_by_epoch': False},
        },
        log_processor={'by_epoch': False, 'window_size': 1},
        randomness={'seed': 0},
        **kwargs,
    )


@pytest.fixture(scope='module')
def resumed_work_dir(tmp_path_factory):
    """Trained to iteration 3 (checkpoint at 2), then resumed from iter_2.pth to 6."""
    work_dir = tmp_path_factory.mktemp('run')
    _runner(work_dir, max_iters=3).train()
    time.sleep(1.1)  # mmengine names a run's folder by the second it started
    _runner(work_dir, max_iters=6, resume=True).train()
    return work_dir


def test_real_resumed_run(resumed_work_dir, tmp_path):
    first, second = (read_scalars(path) for path in scalar_logs(resumed_work_dir))
    assert [step for step, _ in first.train['loss']] == [1, 2, 3]
    assert [step for step, _ in second.train['loss']] == [3, 4, 5, 6]
    curves = load_curves(resumed_work_dir)
    assert curves.train['loss'] == first.train['loss'][:2] + second.train['loss']
    assert curves.train['lr'] == first.train['lr'][:2] + second.train['lr']
    assert [step for step, _ in curves.validations()] == [2, 4, 6]
    assert curves.summary().startswith('loss (loss), lr and val mIoU over iterations 1-6 from 2')
    with Image.open(plot_curves(curves, tmp_path / 'curves.png')) as image:
        assert image.size == (1500, 400)
