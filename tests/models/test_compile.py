"""``torch.compile`` of MAEViT: one graph, no break, the same features and gradients."""

import pytest
import torch

from mae_seg.models import MAEViT

TINY = dict(img_size=64, embed_dims=64, num_layers=2, num_heads=2, out_indices=[0, 1])


@pytest.mark.slow
@pytest.mark.parametrize('training', [False, True], ids=['inference', 'training'])
def test_compiles_without_a_graph_break(training):
    model = MAEViT(**TINY).train(training)
    images = torch.randn(2, 3, 64, 96)
    torch._dynamo.reset()
    with torch.set_grad_enabled(training):
        explanation = torch._dynamo.explain(model)(images)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.slow
def test_compiled_model_gives_the_same_features_and_gradients():
    """Traced by dynamo and AOT autograd, as ``torch.compile`` does, without inductor's code
    generation (minutes on a CPU, and torch's own business)."""
    model = MAEViT(**TINY).train()
    for param in model.parameters():  # layer scales and tables away from their init
        torch.nn.init.normal_(param, std=0.1) if param.dim() > 1 else None
    compiled = torch.compile(model, backend='aot_eager')
    images = torch.randn(2, 3, 64, 96)
    weights = [torch.randn(2, 64, 4, 6) for _ in range(2)]

    def run(m):
        m.zero_grad(set_to_none=True)
        outputs = m(images)
        sum((o * w).sum() for o, w in zip(outputs, weights)).backward()
        return outputs, {n: p.grad.clone() for n, p in model.named_parameters()}

    expected_out, expected_grad = run(model)
    actual_out, actual_grad = run(compiled)
    for e, a in zip(expected_out, actual_out):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-5)
    for name, grad in expected_grad.items():
        torch.testing.assert_close(actual_grad[name], grad, rtol=1e-4, atol=1e-5, msg=name)
