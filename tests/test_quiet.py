"""Quiet output: known warnings filtered narrowly, one init summary line, the Runner's
start-of-run dumps kept off the terminal."""

import logging
import warnings

import numpy as np
from mmengine.model import BaseModule
from mmengine.structures import PixelData
from torch import nn

from mae_seg.compat import quiet_known_warnings
from mae_seg.runner.run import _LogFileOnly


def test_pixel_data_shape_warning_is_filtered_and_others_are_not():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        quiet_known_warnings()
        PixelData(data=np.zeros((4, 5)))
        warnings.warn('The shape of value will convert from a test', UserWarning, stacklevel=1)
    messages = [str(w.message) for w in caught]
    # Filtered only where mmengine raises it: the same words from elsewhere still show.
    assert messages == ['The shape of value will convert from a test']


class _Tiny(BaseModule):
    def __init__(self):
        super().__init__(init_cfg=dict(type='Constant', val=1.0, layer='Linear'))
        self.first = nn.Linear(3, 4)
        self.second = nn.Linear(4, 2)


def test_init_weights_logs_one_summary_line(mm_log):
    _Tiny().init_weights()
    summaries = [m for m in mm_log if 'initialised' in m]
    # Where the details go depends on whether an earlier run in this process left a log file.
    assert len(summaries) == 1
    assert summaries[0].startswith('_Tiny: initialised 4 parameter tensors (0.00 M values); ')
    assert summaries[0].endswith(('no log file', '.log'))
    assert not [m for m in mm_log if 'first.weight' in m]  # no per-parameter lines


def record(message):
    return logging.LogRecord('mmengine', logging.INFO, __file__, 1, message, None, None)


def test_runner_dumps_are_kept_off_the_terminal():
    keep = _LogFileOnly()
    dash = '-' * 60
    assert not keep.filter(record(f'\n{dash}\nSystem environment:\n    sys.platform: linux'))
    assert not keep.filter(record("Config:\nmodel = dict(type='EncoderDecoder')"))
    assert not keep.filter(record('Hooks will be executed in the following order:\nbefore_run'))
    assert keep.filter(record('Iter(test) [16/16]    aAcc: 97.9  mIoU: 88.7'))
    assert keep.filter(record('Load checkpoint from work_dirs/iter_400.pth'))
