"""The size-generic adaptive average pooling against torch's own."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mae_seg.deploy.pooling import ExportableAdaptiveAvgPool2d, exportable_pooling


@pytest.mark.parametrize('size', [(8, 8), (7, 13), (32, 43), (1, 5), (5, 1)])
@pytest.mark.parametrize('output_size', [1, 2, 3, 6, (2, 5)])
def test_matches_adaptive_avg_pool2d(size, output_size):
    x = torch.randn(2, 3, *size)
    expected = F.adaptive_avg_pool2d(x, output_size)
    actual = ExportableAdaptiveAvgPool2d(output_size)(x)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-6)


def test_swaps_only_while_exporting_and_restores():
    pool = nn.AdaptiveAvgPool2d(3)
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Sequential(pool))
    with exportable_pooling(model) as swapped:
        assert swapped == 1
        assert isinstance(model[1][0], ExportableAdaptiveAvgPool2d)
        assert model[1][0].output_size == (3, 3)
    assert model[1][0] is pool


def test_refuses_open_output_sizes():
    with pytest.raises(ValueError, match='must be ints'):
        ExportableAdaptiveAvgPool2d((None, 3))
