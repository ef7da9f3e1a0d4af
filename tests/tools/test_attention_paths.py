"""tools/analysis/attention_paths.py: which paths it times where, and its refusals."""

import pytest
import torch


@pytest.fixture(scope='module')
def tool(load_tool):
    return load_tool('analysis/attention_paths.py')


def test_paths_per_device(tool):
    assert tool.paths_for('cuda', training=True) == ['flex_table', 'fused_sdpa']
    assert 'flex_table' not in tool.paths_for('cpu', training=True)  # no CPU flex backward
    assert 'flex_table' in tool.paths_for('cpu', training=False)
    assert 'cpu_table_recompute' in tool.paths_for('cpu', training=True)


@pytest.mark.parametrize('path', ['fused_sdpa', 'cpu_table_recompute'])
def test_a_training_step_gives_every_leaf_a_gradient(tool, path):
    step = tool.make_step(path, 1, 2, (2, 3), 'cpu', torch.float32, training=True)
    step()
    assert len(step.leaves) == 4  # q, k, v and the table
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in step.leaves)


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message without a GPU')
def test_cuda_without_a_gpu_is_a_one_line_error(tool, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tool.main(['--device', 'cuda'])
    assert exit_info.value.code == 2
    assert 'torch sees no GPU' in capsys.readouterr().err
