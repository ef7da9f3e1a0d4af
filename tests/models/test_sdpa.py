"""Attention with a learned bias: values and gradients against the written-out formula."""

import pytest
import torch
from mmseg.models.backbones.mae import MAE

from mae_seg.models import MAEViT
from mae_seg.models.layers.attention import AttentionWorkspace, RelPosAttention
from mae_seg.models.layers.positions import relative_position_index
from mae_seg.models.layers.sdpa import attention_with_bias, attention_with_bias_table

TINY = dict(embed_dims=96, num_layers=4, num_heads=3, out_indices=[1, 3])


def randomize_(module):
    """Non-trivial values everywhere, bias tables and layer scales included."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in module.named_parameters():
            scale = 0.5 if 'gamma' in name or 'relative_position' in name else 0.05
            param.copy_(torch.randn(param.shape, generator=generator) * scale)
    return module


def reference_attention(query, key, value, bias):
    scores = query @ key.transpose(-2, -1) * query.shape[-1] ** -0.5 + bias
    return scores.softmax(-1) @ value


def leaves(batch, bias_batch, heads=3, tokens=17, dims=8, dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    shapes = [(batch, heads, tokens, dims)] * 3 + [(bias_batch, heads, tokens, tokens)]
    return [
        torch.randn(shape, generator=generator, dtype=dtype).requires_grad_() for shape in shapes
    ]


def table_leaves(batch, heads=3, tokens=17, dims=8, entries=11):
    generator = torch.Generator().manual_seed(0)
    tensors = [torch.randn(batch, heads, tokens, dims, generator=generator) for _ in range(3)]
    tensors.append(torch.randn(heads, entries, generator=generator))
    index = torch.randint(entries, (tokens, tokens), generator=generator)
    return [t.requires_grad_() for t in tensors], index


@pytest.mark.parametrize('batch', [1, 3])
def test_bias_table_path_matches_the_formula(batch):
    ours, index = table_leaves(batch)
    expected, _ = table_leaves(batch)
    out = attention_with_bias_table(*ours, index)
    query, key, value, table = expected
    reference = reference_attention(query, key, value, table[:, index].unsqueeze(0))
    grad = torch.randn(reference.shape, generator=torch.Generator().manual_seed(1))
    out.backward(grad)
    reference.backward(grad)
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-5)
    for name, a, e in zip('qkvt', ours, expected):
        torch.testing.assert_close(a.grad, e.grad, rtol=0, atol=1e-5, msg=name)


@pytest.mark.parametrize('batch, bias_batch', [(1, 1), (3, 1), (3, 3)])
def test_formula_path_matches_the_formula(batch, bias_batch):
    ours = leaves(batch, bias_batch)
    expected = leaves(batch, bias_batch)
    out = attention_with_bias(*ours)
    reference = reference_attention(*expected)
    grad = torch.randn(reference.shape, generator=torch.Generator().manual_seed(1))
    out.backward(grad)
    reference.backward(grad)
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-5)
    for name, a, e in zip('qkvb', ours, expected):
        torch.testing.assert_close(a.grad, e.grad, rtol=0, atol=1e-5, msg=name)


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


def test_fp32_cpu_training_keeps_no_attention_sized_tensor():
    grid, heads, batch = (6, 7), 3, 2
    tokens = 1 + grid[0] * grid[1]
    attention = randomize_(RelPosAttention(96, heads, grid)).train()
    inputs = (torch.randn(batch, tokens, 96), grid, relative_position_index(grid))
    shapes = saved_tensor_shapes(attention, inputs)
    assert not [shape for shape in shapes if shape[-2:] == (tokens, tokens)], shapes
    # The bf16 formula path keeps its weights: the check would see them.
    with torch.autocast('cpu', dtype=torch.bfloat16):
        shapes = saved_tensor_shapes(attention, inputs)
    assert (batch, heads, tokens, tokens) in shapes


def test_without_bias_gradient_the_fused_kernel_is_used_as_it_is():
    query, key, value, bias = leaves(2, 1)
    out = attention_with_bias(query, key, value, bias.detach())
    assert 'CPUAttentionWithBias' not in type(out.grad_fn).__name__
    torch.testing.assert_close(out, reference_attention(query, key, value, bias), rtol=0, atol=1e-5)


@pytest.mark.parametrize('bias_batch', [1, 2])
def test_bf16_values_and_gradients_are_close_to_fp32(bias_batch):
    fp32 = leaves(2, bias_batch)
    bf16 = [t.detach().bfloat16().requires_grad_() for t in fp32]
    expected = reference_attention(*fp32)
    expected.square().sum().backward()
    out = attention_with_bias(*bf16)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, rtol=0.02, atol=0.02)
    out.float().square().sum().backward()
    for a, e in zip(bf16, fp32):
        assert a.grad.dtype == torch.bfloat16
        torch.testing.assert_close(a.grad.float(), e.grad, rtol=0.05, atol=0.05)


def test_gradients_match_mmseg_mae():
    reference = randomize_(MAE(img_size=64, **TINY))
    reference.train()
    ours = MAEViT(img_size=64, **TINY).train()
    ours.load_state_dict(reference.state_dict())
    images = torch.randn(2, 3, 64, 64)
    for model in (reference, ours):
        sum((f * f).mean() for f in model(images)).backward()
    expected = dict(reference.named_parameters())
    for name, param in ours.named_parameters():
        torch.testing.assert_close(param.grad, expected[name].grad, rtol=1e-4, atol=1e-6, msg=name)


def test_workspace_gives_the_allocated_result_and_is_reused():
    attention = randomize_(RelPosAttention(96, 3, (4, 5))).eval()
    index = relative_position_index((4, 5))
    workspace = AttentionWorkspace()
    with torch.no_grad():
        expected = attention.relative_position_bias((4, 5), index, torch.float32)
        first = attention.relative_position_bias((4, 5), index, torch.float32, workspace)
        again = attention.relative_position_bias((4, 5), index, torch.float32, workspace)
        cast = attention.relative_position_bias((4, 5), index, torch.bfloat16, workspace)
    assert first.data_ptr() == again.data_ptr()
    torch.testing.assert_close(first, expected, rtol=0, atol=0)
    assert first.shape == (1, 3, 21, 21)
    torch.testing.assert_close(cast, expected.bfloat16(), rtol=0, atol=0)


def test_inference_without_autograd_equals_with_it():
    model = randomize_(MAEViT(img_size=64, **TINY)).eval()
    images = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        without = model(images)
    with_grad = model(images)
    for a, e in zip(without, with_grad):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-5)
