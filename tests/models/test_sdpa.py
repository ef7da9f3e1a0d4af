"""Attention with a learned bias: the path each call takes, and values and gradients of every
path against the written-out formula and mmseg's MAE; whole-image inference without an
``N x N`` tensor."""

import functools
import types

import pytest
import torch
from mmseg.models.backbones.mae import MAE

from mae_seg.models import MAEViT
from mae_seg.models.layers import sdpa
from mae_seg.models.layers.attention import RelPosAttention
from mae_seg.models.layers.positions import rel_pos_table_size, relative_position_index
from mae_seg.models.layers.rel_pos_index import RelPosIndex
from mae_seg.models.layers.sdpa import (
    ATTENTION_PATHS,
    AttentionWorkspace,
    attention_with_rel_pos_bias,
    choose_attention_path,
    gather_bias,
    use_attention_path,
)

TINY = dict(embed_dims=96, num_layers=4, num_heads=3, out_indices=[1, 3])


@pytest.fixture(scope='session')
def randomize(randomize):
    """Norm weights drawn around 0 like every other weight, as these tests have always had."""
    return functools.partial(randomize, shifts={})


def reference_attention(query, key, value, bias):
    scores = query @ key.transpose(-2, -1) * query.shape[-1] ** -0.5 + bias
    return scores.softmax(-1) @ value


def table_leaves(batch, heads=3, tokens=17, dims=8, entries=11, dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    tensors = [torch.randn(batch, heads, tokens, dims, generator=generator) for _ in range(3)]
    tensors.append(torch.randn(heads, entries, generator=generator))
    index = torch.randint(entries, (tokens, tokens), generator=generator)
    return [t.to(dtype).requires_grad_() for t in tensors], index


def reference_with_table(query, key, value, table, index):
    return reference_attention(query, key, value, table[:, index].unsqueeze(0))


# torch has no FlexAttention backward on the CPU: flex_table's forward is tested below, its
# gradients in tests/cuda.
# blockwise_sdpa needs a grid's index: tested below.
CPU_TRAINING_PATHS = sorted(set(ATTENTION_PATHS) - {'flex_table', 'blockwise_sdpa'})


@pytest.mark.parametrize('path', CPU_TRAINING_PATHS)
@pytest.mark.parametrize('batch', [1, 3])
def test_every_path_matches_the_formula(path, batch):
    ours, index = table_leaves(batch)
    expected, _ = table_leaves(batch)
    out = ATTENTION_PATHS[path](*ours, index, 0.0, None)
    reference = reference_with_table(*expected, index)
    grad = torch.randn(reference.shape, generator=torch.Generator().manual_seed(1))
    out.backward(grad)
    reference.backward(grad)
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-5)
    for name, a, e in zip('qkvt', ours, expected):
        torch.testing.assert_close(a.grad, e.grad, rtol=0, atol=1e-5, msg=name)


@pytest.mark.slow
def test_flex_table_forward_matches_the_formula():
    """Compiles FlexAttention for the CPU (about a minute)."""
    leaves, index = table_leaves(2, tokens=25)
    leaves = [t.detach() for t in leaves]
    with torch.no_grad():
        out = ATTENTION_PATHS['flex_table'](*leaves, index, 0.0, None)
        expected = reference_with_table(*leaves, index)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


CPU, CUDA = torch.device('cpu'), torch.device('cuda')


@pytest.mark.parametrize(
    'device, dtype, needs_grad, dropout_p, path',
    [
        (CPU, torch.float32, False, 0.0, 'fused_sdpa'),  # inference
        (CPU, torch.bfloat16, False, 0.0, 'fused_sdpa'),
        (CPU, torch.float32, True, 0.0, 'cpu_table_recompute'),  # fp32 training
        (CPU, torch.bfloat16, True, 0.0, 'cpu_formula'),  # bf16 autocast training
        (CPU, torch.float32, True, 0.1, 'fused_sdpa'),  # attention dropout
        (CUDA, torch.float16, True, 0.0, 'fused_sdpa'),
        (CUDA, torch.float32, False, 0.0, 'fused_sdpa'),
    ],
)
def test_the_path_for_each_device_dtype_grad_and_dropout(
    device, dtype, needs_grad, dropout_p, path
):
    assert sdpa.cpu_flash_kernel_available()  # the torch this project pins has the CPU op
    assert choose_attention_path(device, dtype, needs_grad, dropout_p) == path


def test_without_the_private_cpu_kernel_fp32_training_takes_public_sdpa(monkeypatch):
    monkeypatch.setattr(sdpa, 'cpu_flash_kernel_available', lambda: False)
    assert choose_attention_path(CPU, torch.float32, True, 0.0) == 'fused_sdpa'
    ours, index = table_leaves(2)
    expected, _ = table_leaves(2)
    out = attention_with_rel_pos_bias(*ours, index)
    reference = reference_with_table(*expected, index)
    out.sum().backward()
    reference.sum().backward()
    torch.testing.assert_close(ours[3].grad, expected[3].grad, rtol=0, atol=1e-5)


def raise_type_error(*args, **kwargs):
    raise TypeError('unexpected keyword argument')


@pytest.mark.parametrize(
    'aten', [{}, {'_scaled_dot_product_flash_attention_for_cpu': raise_type_error}]
)
def test_the_feature_check_rejects_a_missing_or_changed_kernel(monkeypatch, aten):
    """A torch that renamed the private op, or changed its signature."""
    monkeypatch.setattr(torch.ops, 'aten', types.SimpleNamespace(**aten))
    sdpa.cpu_flash_kernel_available.cache_clear()
    try:
        assert sdpa.cpu_flash_kernel_available() is False
    finally:
        sdpa.cpu_flash_kernel_available.cache_clear()


def record_paths(monkeypatch):
    taken = []
    for name, function in ATTENTION_PATHS.items():

        def recorded(*args, name=name, function=function):
            taken.append(name)
            return function(*args)

        monkeypatch.setitem(ATTENTION_PATHS, name, recorded)
    return taken


def test_the_model_runs_the_chosen_path(randomize, monkeypatch):
    taken = record_paths(monkeypatch)
    model = randomize(MAEViT(img_size=64, **TINY))
    images = torch.randn(2, 3, 64, 64)
    model.train()
    model(images)
    assert taken == ['cpu_table_recompute'] * 4
    taken.clear()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        model(images)
    assert taken == ['cpu_formula'] * 4
    taken.clear()
    model.eval()
    with torch.no_grad():
        model(images)
    assert taken == ['fused_sdpa'] * 4
    taken.clear()
    with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16):
        model(torch.randn(1, 3, 768, 768))  # 2,305 tokens
    assert taken == ['blockwise_sdpa'] * 4
    taken.clear()
    dropout = MAEViT(img_size=64, attn_drop_rate=0.1, **TINY).train()
    dropout(images)
    assert taken == ['fused_sdpa'] * 4


def saved_tensor_shapes(module, inputs):
    """Shapes of the float tensors autograd keeps for the backward of ``module`` (the
    integer index is shared by all layers)."""
    shapes = []

    def pack(tensor):
        if tensor.is_floating_point():
            shapes.append(tuple(tensor.shape))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        module(*inputs)
    return shapes


def test_fp32_cpu_training_keeps_no_attention_sized_tensor(randomize):
    grid, heads, batch = (6, 7), 3, 2
    tokens = 1 + grid[0] * grid[1]
    attention = randomize(RelPosAttention(96, heads, grid)).train()
    inputs = (
        torch.randn(batch, tokens, 96),
        attention.bias_table(grid),
        relative_position_index(grid),
    )
    shapes = saved_tensor_shapes(attention, inputs)
    assert not [shape for shape in shapes if shape[-2:] == (tokens, tokens)], shapes
    # The bf16 formula path keeps its weights: the check would see them.
    with torch.autocast('cpu', dtype=torch.bfloat16):
        shapes = saved_tensor_shapes(attention, inputs)
    assert (batch, heads, tokens, tokens) in shapes


@pytest.mark.parametrize('path', ['fused_sdpa', 'cpu_formula'])
def test_bf16_values_and_gradients_are_close_to_fp32(path):
    fp32, index = table_leaves(2)
    bf16 = [t.detach().bfloat16().requires_grad_() for t in fp32]
    expected = reference_with_table(*fp32, index)
    expected.square().sum().backward()
    out = ATTENTION_PATHS[path](*bf16, index, 0.0, None)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, rtol=0.02, atol=0.02)
    out.float().square().sum().backward()
    for a, e in zip(bf16, fp32):
        assert a.grad.dtype == torch.bfloat16
        torch.testing.assert_close(a.grad.float(), e.grad, rtol=0.05, atol=0.05)


def test_gradients_match_mmseg_mae(randomize):
    reference = randomize(MAE(img_size=64, **TINY))
    reference.train()
    ours = MAEViT(img_size=64, **TINY).train()
    ours.load_state_dict(reference.state_dict())
    images = torch.randn(2, 3, 64, 64)
    for model in (reference, ours):
        sum((f * f).mean() for f in model(images)).backward()
    expected = dict(reference.named_parameters())
    for name, param in ours.named_parameters():
        torch.testing.assert_close(param.grad, expected[name].grad, rtol=1e-4, atol=1e-6, msg=name)


def test_workspace_gives_the_allocated_result_and_is_reused(randomize):
    attention = randomize(RelPosAttention(96, 3, (4, 5))).eval()
    index = relative_position_index((4, 5))
    workspace = AttentionWorkspace()
    with torch.no_grad():
        table = attention.bias_table((4, 5))
        expected = attention.relative_position_bias_table[index].permute(2, 0, 1).unsqueeze(0)
        allocated = gather_bias(table, index, torch.float32)
        first = gather_bias(table, index, torch.float32, workspace)
        again = gather_bias(table, index, torch.float32, workspace)
        cast = gather_bias(table, index, torch.bfloat16, workspace)
    assert first.data_ptr() == again.data_ptr()
    torch.testing.assert_close(allocated, expected, rtol=0, atol=0)
    torch.testing.assert_close(first, expected, rtol=0, atol=0)
    assert first.shape == (1, 3, 21, 21)
    torch.testing.assert_close(cast, expected.bfloat16(), rtol=0, atol=0)


def test_inference_without_autograd_equals_with_it(randomize):
    model = randomize(MAEViT(img_size=64, **TINY)).eval()
    images = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        without = model(images)
    with_grad = model(images)
    for a, e in zip(without, with_grad):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-5)


# -- whole-image inference: the bias per block of queries ----------------------------------

GRID = (6, 5)  # 31 tokens


@pytest.fixture
def blockwise_from_few_tokens(monkeypatch):
    """Inference takes the blockwise path from 2 tokens on, in blocks of 7 queries (one
    grid row of 5 and the rest), so that tiny grids have several blocks."""
    monkeypatch.setitem(sdpa.BLOCKWISE_MIN_TOKENS, 'cpu', 2)
    monkeypatch.setitem(sdpa.QUERY_BLOCK_ROWS, 'cpu', 7)


@pytest.mark.parametrize('device', [CPU, CUDA])
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16, torch.float16])
def test_inference_on_a_large_grid_takes_the_blockwise_path(device, dtype):
    large, small = (64, 32), (32, 32)  # 2,049 and 1,025 tokens
    with torch.no_grad():
        assert choose_attention_path(device, dtype, False, 0.0, large) == 'blockwise_sdpa'
        assert choose_attention_path(device, dtype, False, 0.0, small) == 'fused_sdpa'
        # An index without its grid, and attention dropout (training mode under no_grad).
        assert choose_attention_path(device, dtype, False, 0.0) == 'fused_sdpa'
        assert choose_attention_path(device, dtype, False, 0.1, large) == 'fused_sdpa'
    with torch.inference_mode():
        assert choose_attention_path(device, dtype, False, 0.0, large) == 'blockwise_sdpa'
    # With autograd on, a frozen table keeps its path.
    assert choose_attention_path(device, dtype, False, 0.0, large) == 'fused_sdpa'


@pytest.mark.parametrize('tracing', ['is_compiling', 'is_exporting'])
def test_traced_inference_takes_the_dense_path(monkeypatch, tracing):
    """Compile and export get one graph for any input size: the dense gather, not a Python
    loop over blocks unrolled for one size."""
    monkeypatch.setattr(torch.compiler, tracing, lambda: True)
    with torch.no_grad():
        assert choose_attention_path(CPU, torch.float32, False, 0.0, (64, 64)) == 'fused_sdpa'


def test_a_forced_path_wins_and_an_unknown_one_is_refused():
    with use_attention_path('cpu_formula'), torch.no_grad():
        assert choose_attention_path(CPU, torch.float32, False, 0.0, (64, 64)) == 'cpu_formula'
    with pytest.raises(ValueError, match="attention path 'dense' is not one of"):
        with use_attention_path('dense'):
            pass


def grid_leaves(grid, batch=2, heads=3, dims=8, dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    tokens = 1 + grid[0] * grid[1]
    tensors = [torch.randn(batch, heads, tokens, dims, generator=generator) for _ in range(3)]
    tensors.append(torch.randn(heads, rel_pos_table_size(grid), generator=generator))
    return [t.to(dtype).requires_grad_() for t in tensors]


@pytest.mark.parametrize('block_rows', [1, 7, 10, 512])
@pytest.mark.parametrize('grid', [GRID, (1, 4), (3, 1)])
def test_blockwise_matches_the_formula_with_and_without_autograd(monkeypatch, block_rows, grid):
    monkeypatch.setitem(sdpa.QUERY_BLOCK_ROWS, 'cpu', block_rows)
    ours, expected = grid_leaves(grid), grid_leaves(grid)
    index = RelPosIndex(grid, CPU)
    with torch.no_grad():
        without = ATTENTION_PATHS['blockwise_sdpa'](*ours, index, 0.0, AttentionWorkspace())
        again = ATTENTION_PATHS['blockwise_sdpa'](*ours, index, 0.0, AttentionWorkspace())
    out = ATTENTION_PATHS['blockwise_sdpa'](*ours, index, 0.0, None)
    reference = reference_with_table(*expected, relative_position_index(grid))
    for result in (without, again, out):
        torch.testing.assert_close(result, reference, rtol=0, atol=1e-5)
    grad = torch.randn(reference.shape, generator=torch.Generator().manual_seed(1))
    out.backward(grad)
    reference.backward(grad)
    for name, a, e in zip('qkvt', ours, expected):
        torch.testing.assert_close(a.grad, e.grad, rtol=0, atol=1e-5, msg=name)
    assert not index.is_dense


def test_blockwise_in_bf16_is_close_to_fp32_and_needs_the_grid():
    fp32 = [t.detach() for t in grid_leaves(GRID)]
    bf16 = [t.bfloat16() for t in fp32[:3]] + [fp32[3]]  # the table stays fp32, as in MAEViT
    with torch.no_grad():
        out = ATTENTION_PATHS['blockwise_sdpa'](*bf16, RelPosIndex(GRID, CPU), 0.0, None)
        expected = reference_with_table(*fp32, relative_position_index(GRID))
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out.float(), expected, rtol=0, atol=2e-2)
        with pytest.raises(TypeError, match='pass a RelPosIndex'):
            ATTENTION_PATHS['blockwise_sdpa'](*fp32, relative_position_index(GRID), 0.0, None)


@pytest.mark.usefixtures('blockwise_from_few_tokens')
@pytest.mark.parametrize('img_size', [(64, 96), (96, 32)])
def test_blockwise_inference_matches_mmseg_at_the_native_grid(randomize, monkeypatch, img_size):
    reference = randomize(MAE(img_size=img_size, **TINY))
    reference.eval()
    ours = MAEViT(img_size=img_size, **TINY).eval()
    ours.load_state_dict(reference.state_dict())
    taken = record_paths(monkeypatch)
    images = torch.randn(2, 3, *img_size)
    with torch.no_grad():
        expected, actual = reference(images), ours(images)
    assert taken == ['blockwise_sdpa'] * 4
    for e, a in zip(expected, actual):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-5)


@pytest.mark.usefixtures('blockwise_from_few_tokens')
@pytest.mark.parametrize('size', [(96, 160), (160, 48)])
def test_blockwise_inference_equals_the_dense_path_off_the_native_grid(randomize, size):
    model = randomize(MAEViT(img_size=64, **TINY)).eval()
    images = torch.randn(2, 3, *size)
    with torch.no_grad():
        blockwise = model(images)
        with use_attention_path('fused_sdpa'):
            dense = model(images)
    for a, e in zip(blockwise, dense):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-5)


def largest_tensor_of(function):
    """``function()``'s result and the most elements any memory made while it ran holds:
    the storage of every op's outputs, allocations included (``torch.empty`` is an op too);
    a view counts the storage it looks at, not its shape."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class LargestOutput(TorchDispatchMode):
        largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for tensor in torch.utils._pytree.tree_leaves(out):
                if isinstance(tensor, torch.Tensor):
                    elements = tensor.untyped_storage().nbytes() // tensor.element_size()
                    self.largest = max(self.largest, elements)
            return out

    with LargestOutput() as mode:
        result = function()
    return result, mode.largest


def test_whole_image_inference_makes_no_tensor_of_n_squared_elements(randomize, monkeypatch):
    """The memory claim, checked structurally: at 24x24 tokens (N = 577) in blocks of 64
    queries, no tensor of the forward pass reaches N^2 elements (the FFN's hidden
    activations, 4 x 96 x N, are the largest); the dense path makes heads x N^2."""
    monkeypatch.setitem(sdpa.BLOCKWISE_MIN_TOKENS, 'cpu', 512)
    monkeypatch.setitem(sdpa.QUERY_BLOCK_ROWS, 'cpu', 64)
    model = randomize(MAEViT(img_size=64, **TINY)).eval()
    images = torch.randn(1, 3, 384, 384)
    tokens = 1 + 24 * 24
    with torch.no_grad():
        blockwise, largest = largest_tensor_of(lambda: model(images))
        (entry,) = model._grid_cache._entries.values()
        assert not entry.rel_pos_index.is_dense  # no (N, N) index either
        assert largest < tokens * tokens
        with use_attention_path('fused_sdpa'):
            dense, largest_dense = largest_tensor_of(lambda: model(images))
    assert largest_dense >= 3 * tokens * tokens
    assert entry.rel_pos_index.is_dense  # built by the dense run
    for a, e in zip(blockwise, dense):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-5)


@pytest.mark.usefixtures('blockwise_from_few_tokens')
def test_the_index_is_built_only_for_paths_that_read_it_whole(randomize):
    model = randomize(MAEViT(img_size=64, **TINY)).eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 160, 96))
        model(torch.randn(1, 3, 64, 64))
    entries = model._grid_cache._entries
    assert len(entries) == 2
    assert not any(entry.rel_pos_index.is_dense for entry in entries.values())
    model.train()
    model(torch.randn(1, 3, 64, 64))  # training reads the whole index
    assert entries[((4, 4), CPU)].rel_pos_index.is_dense
