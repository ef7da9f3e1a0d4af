"""MAEViT on CUDA: parity with mmseg's MAE, fused attention kernels, a mixed-precision step.

Marked ``cuda``: skipped without a GPU (``pytest -m cuda`` runs only these).
"""

import copy
from pathlib import Path

import pytest
import torch
from mmseg.models.backbones.mae import MAE

import mae_seg  # noqa: F401  (registers our classes)
from mae_seg.models import MAEViT

pytestmark = pytest.mark.cuda

VIT_B = dict(img_size=512, out_indices=[3, 5, 7, 11])
CONFIG = Path(__file__).resolve().parents[2] / 'configs/mae'
# Tolerances: fp32 as on the CPU. Under autocast each model rounds differently (fused kernel
# vs mmseg's unfused softmax), so ours may be off the fp32 features by at most twice what
# mmseg's own autocast run is, plus a floor for features that come out exact.
FP32_ATOL = 1e-4
AUTOCAST_FLOOR = 1e-3


def randomize_(module):
    """Non-trivial values everywhere, bias tables and layer scales included."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in module.named_parameters():
            scale = 0.5 if 'gamma' in name or 'relative_position' in name else 0.05
            param.copy_(torch.randn(param.shape, generator=generator) * scale)
            if name.endswith(('ln1.weight', 'ln2.weight')):
                param.add_(1.0)
    return module


def mmseg_pair(**kwargs):
    reference = randomize_(MAE(**kwargs)).cuda()
    reference.eval()  # mmseg's train() returns None
    ours = MAEViT(**kwargs).cuda().eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    return reference, ours


def max_diff(actual, expected):
    return max((a.float() - e.float()).abs().max().item() for a, e in zip(actual, expected))


def test_fp32_parity_with_mmseg_vit_b_512():
    reference, ours = mmseg_pair(**VIT_B)
    images = torch.randn(2, 3, 512, 512, device='cuda')
    with torch.no_grad():
        expected, actual = reference(images), ours(images)
    for e, a in zip(expected, actual):
        torch.testing.assert_close(a, e, rtol=0, atol=FP32_ATOL)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16], ids=['fp16', 'bf16'])
def test_autocast_parity_with_mmseg_vit_b_512(dtype):
    reference, ours = mmseg_pair(**VIT_B)
    images = torch.randn(2, 3, 512, 512, device='cuda')
    with torch.no_grad():
        exact = reference(images)
        with torch.autocast('cuda', dtype=dtype):
            theirs, mine = reference(images), ours(images)
    their_error, our_error = max_diff(theirs, exact), max_diff(mine, exact)
    print(f'{dtype}: max abs diff to fp32, mmseg {their_error:.2e}, MAEViT {our_error:.2e}')
    assert our_error <= 2 * their_error + AUTOCAST_FLOOR


def _gradients(model, images, weights):
    model.zero_grad(set_to_none=True)
    outputs = model(images)
    sum((o * w).sum() for o, w in zip(outputs, weights)).backward()
    return {name: p.grad for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize('size', [224, 512])
def test_gradients_of_every_parameter_match_mmseg(size):
    kwargs = dict(img_size=size, embed_dims=192, num_layers=4, num_heads=3, out_indices=[1, 3])
    reference, ours = mmseg_pair(**kwargs)
    ours.train()
    images = torch.randn(2, 3, size, size, device='cuda')
    weights = [torch.randn(2, 192, size // 16, size // 16, device='cuda') for _ in range(2)]
    expected = _gradients(reference, images, weights)
    actual = _gradients(ours, images, weights)
    tables = [name for name in actual if name.endswith('relative_position_bias_table')]
    assert len(tables) == 4
    assert set(actual) == set(expected)
    for name, grad in actual.items():
        torch.testing.assert_close(grad, expected[name], rtol=1e-3, atol=1e-4, msg=name)


def test_with_cp_gives_the_same_outputs_and_gradients():
    kwargs = dict(img_size=512, embed_dims=192, num_layers=4, num_heads=3, out_indices=[1, 3])
    plain = randomize_(MAEViT(**kwargs)).cuda().train()
    checkpointed = copy.deepcopy(plain)
    checkpointed.with_cp = True
    images = torch.randn(2, 3, 512, 512, device='cuda')
    weights = [torch.randn(2, 192, 32, 32, device='cuda') for _ in range(2)]
    expected = _gradients(plain, images, weights)
    actual = _gradients(checkpointed, images, weights)
    for name, grad in actual.items():
        torch.testing.assert_close(grad, expected[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize(
    'dtype', [torch.float16, torch.bfloat16, torch.float32], ids=['fp16', 'bf16', 'fp32']
)
@pytest.mark.parametrize('training', [True, False], ids=['train', 'infer'])
def test_attention_runs_a_fused_kernel_not_math(dtype, training):
    """With the math backend switched off SDPA raises instead of falling back to it: a
    forward (and backward) that completes ran a fused kernel."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    fused = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]
    model = randomize_(MAEViT(**VIT_B)).cuda().train(training)
    images = torch.randn(2, 3, 512, 512, device='cuda', requires_grad=training)
    autocast = torch.autocast('cuda', dtype=dtype, enabled=dtype != torch.float32)
    with sdpa_kernel(fused), autocast, torch.set_grad_enabled(training):
        outputs = model(images)
        if training:
            sum(o.float().sum() for o in outputs).backward()
    if training:
        assert all(p.grad is not None for n, p in model.named_parameters() if 'relative' in n)
    assert all(torch.isfinite(o).all() for o in outputs)


def test_math_backend_alone_is_refused_by_the_check():
    """The check above can fail: with only the math backend allowed SDPA still runs, so the
    fused-only run is what tells them apart."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model = randomize_(MAEViT(**VIT_B)).cuda().eval()
    images = torch.randn(1, 3, 512, 512, device='cuda')
    with sdpa_kernel([SDPBackend.MATH]), torch.no_grad():
        math_out = model(images)
    with torch.no_grad():
        fused_out = model(images)
    torch.testing.assert_close(fused_out[-1], math_out[-1], rtol=0, atol=FP32_ATOL)


@pytest.mark.slow
def test_vit_b_upernet_amp_training_step_with_layer_decay():
    """Three iterations of the ViT-B UPerNet config as configured: AmpOptimWrapper (fp16,
    dynamic loss scale) and MAELayerDecayOptimizerConstructor."""
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    cfg = Config.fromfile(str(CONFIG / 'mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py'))
    init_default_scope('mmseg')
    cfg.model.pretrained = None
    model = revert_sync_batchnorm(MODELS.build(cfg.model)).cuda().train()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert type(wrapper).__name__ == 'AmpOptimWrapper'
    groups = wrapper.optimizer.param_groups
    assert len({g['lr'] for g in groups}) == 14  # 12 layers, the stem and the heads

    def sample():
        data_sample = SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, 150, (1, 512, 512))))
        data_sample.set_metainfo(dict(img_shape=(512, 512), ori_shape=(512, 512)))
        return data_sample

    scaler = wrapper.loss_scaler
    start_scale = scaler.get_scale()
    for _ in range(3):
        batch = dict(
            inputs=[torch.randint(0, 255, (3, 512, 512), dtype=torch.uint8)] * 2,
            data_samples=[sample(), sample()],
        )
        log_vars = model.train_step(batch, wrapper)
        assert torch.isfinite(log_vars['loss']), log_vars
    # The dynamic scale either halved after an overflow or counted clean steps toward growth.
    assert scaler.get_scale() < start_scale or scaler._get_growth_tracker() > 0


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16], ids=['fp32', 'fp16'])
def test_flex_table_values_and_gradients_match_fused_sdpa(dtype):
    """FlexAttention with the bias read in the kernel, against SDPA with the gathered bias,
    at ViT-B's 512x512 shape: values and the gradients of q, k, v and the table."""
    from mae_seg.models.layers.positions import relative_position_index
    from mae_seg.models.layers.sdpa import ATTENTION_PATHS

    index = relative_position_index((32, 32)).cuda()
    generator = torch.Generator(device='cuda').manual_seed(0)

    def leaves():
        generator.manual_seed(0)
        qkv = [
            torch.randn(2, 12, 1025, 64, device='cuda', generator=generator, dtype=dtype)
            for _ in range(3)
        ]
        table = torch.randn(12, int(index.max()) + 1, device='cuda', generator=generator)
        return [t.requires_grad_() for t in (*qkv, table)]

    results = {}
    for path in ('fused_sdpa', 'flex_table'):
        q, k, v, table = leaves()
        out = ATTENTION_PATHS[path](q, k, v, table.to(dtype), index, 0.0, None)
        out.float().square().mean().backward()
        results[path] = [out, q.grad, k.grad, v.grad, table.grad]
    atol = 1e-4 if dtype == torch.float32 else 2e-2
    for name, flex, sdpa in zip(
        ['out', 'q', 'k', 'v', 'table'], results['flex_table'], results['fused_sdpa']
    ):
        scale = sdpa.float().abs().max().item()
        torch.testing.assert_close(
            flex.float(), sdpa.float(), rtol=0, atol=atol * max(scale, 1), msg=name
        )


def test_whole_image_inference_takes_memory_linear_in_tokens():
    """ViT-B at 1024x2048 (8,193 tokens): the blockwise path's peak is a fraction of the
    dense path's, whose bias alone is 12 x 8193^2 x 4 B = 3.2 GB a layer, and the outputs
    agree."""
    from mae_seg.models.layers.sdpa import use_attention_path

    model = randomize_(MAEViT(**VIT_B)).cuda().eval()
    images = torch.randn(1, 3, 1024, 2048, device='cuda')
    peaks, outputs = {}, {}
    for path in ('blockwise_sdpa', 'fused_sdpa'):  # the dense run caches its (N, N) index
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        with torch.no_grad(), use_attention_path(path):
            outputs[path] = model(images)
        torch.cuda.synchronize()
        peaks[path] = torch.cuda.max_memory_allocated() - before
    assert peaks['blockwise_sdpa'] < 0.3 * peaks['fused_sdpa'], peaks
    for a, e in zip(outputs['blockwise_sdpa'], outputs['fused_sdpa']):
        torch.testing.assert_close(a, e, rtol=0, atol=FP32_ATOL)
