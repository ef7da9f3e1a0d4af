"""MAEViT against mmseg's MAE and timm's ViT, at any size, with checkpointing and loading."""

import contextlib
import copy
import itertools

import pytest
import torch
from mmseg.models.backbones.mae import MAE
from timm.models.vision_transformer import VisionTransformer

from mae_seg.convert import official_to_mae_vit
from mae_seg.errors import CheckpointError
from mae_seg.models import MAEViT
from mae_seg.models.layers.sdpa import use_attention_path

TINY = dict(embed_dims=96, num_layers=4, num_heads=3, out_indices=[1, 3])


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
    reference = randomize_(MAE(**kwargs))
    reference.eval()  # mmseg's train() returns None
    ours = MAEViT(**kwargs).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    return reference, ours


@pytest.mark.parametrize('img_size', [224, 512])
def test_parity_with_mmseg_mae(img_size):
    reference, ours = mmseg_pair(img_size=img_size, final_norm=True, **TINY)
    images = torch.randn(2, 3, img_size, img_size)
    with torch.no_grad():
        expected, actual = reference(images), ours(images)
    assert len(actual) == 2
    for e, a in zip(expected, actual):
        assert a.shape == e.shape
        torch.testing.assert_close(a, e, rtol=0, atol=1e-4)


@pytest.mark.slow
def test_parity_with_mmseg_mae_vit_base_512():
    kwargs = dict(img_size=512, out_indices=[3, 5, 7, 11])
    reference, ours = mmseg_pair(**kwargs)
    images = torch.randn(1, 3, 512, 512)
    with torch.no_grad():
        expected, actual = reference(images), ours(images)
    for e, a in zip(expected, actual):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-4)


def test_parity_with_timm_vit_intermediate_features():
    timm_vit = VisionTransformer(
        img_size=224,
        patch_size=16,
        embed_dim=96,
        depth=4,
        num_heads=3,
        qkv_bias=True,
        init_values=0.3,
        num_classes=0,
    )
    randomize_(timm_vit).eval()
    ours = MAEViT(img_size=224, embed_dims=96, num_layers=4, num_heads=3, out_indices=[0, 1, 2, 3])
    result = ours.load_state_dict(
        official_to_mae_vit(timm_vit.state_dict()).state_dict, strict=False
    )
    assert set(result.missing_keys) == {
        f'layers.{i}.attn.relative_position_bias_table' for i in range(4)
    }
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = timm_vit.forward_intermediates(
            images, indices=4, norm=False, output_fmt='NCHW', intermediates_only=True
        )
        actual = ours.eval()(images)
    assert len(expected) == len(actual) == 4
    for e, a in zip(expected, actual):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-4)


@pytest.mark.parametrize('size', [(512, 768), (768, 512), (640, 640), (234, 345)])
def test_any_input_size_on_a_512_model(size):
    model = randomize_(MAEViT(img_size=512, **TINY)).eval()
    with torch.no_grad():
        features = model(torch.randn(1, 3, *size))
    assert [f.shape for f in features] == [(1, 96, size[0] // 16, size[1] // 16)] * 2
    assert all(torch.isfinite(f).all() for f in features)


def test_other_grid_equals_a_model_built_for_it():
    """Running a 512 model at 640 is the same as a 640 model loaded from its weights."""
    model_512 = randomize_(MAEViT(img_size=512, position_fit='stretch', **TINY)).eval()
    model_640 = MAEViT(img_size=640, **TINY).eval()
    model_640.load_state_dict(model_512.state_dict())
    images = torch.randn(1, 3, 640, 640)
    with torch.no_grad():
        for e, a in zip(model_640(images), model_512(images)):
            torch.testing.assert_close(a, e, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    'position_fit', ['stretch', 'extend', dict(relative='extend'), dict(absolute='extend')]
)
def test_position_fit_acts_only_off_the_native_grid(position_fit):
    """At img_size every fit is mmseg's model; elsewhere the model equals one built for the
    larger grid from position parameters fitted by the pure functions."""
    from mae_seg.models.layers.positions import (
        fit_abs_pos_embed,
        fit_rel_pos_bias_table,
        parse_position_fit,
    )

    reference, _ = mmseg_pair(img_size=64, **TINY)
    model = MAEViT(img_size=64, position_fit=position_fit, **TINY).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    with torch.no_grad():
        native = torch.randn(1, 3, 64, 64)
        for e, a in zip(reference(native), model(native)):
            torch.testing.assert_close(a, e, rtol=0, atol=1e-4)
    relative, absolute = parse_position_fit(position_fit)
    state = model.state_dict()
    for key, value in list(state.items()):
        if key.endswith('relative_position_bias_table'):
            state[key] = fit_rel_pos_bias_table(value, (4, 4), (6, 5), relative)
    state['pos_embed'] = fit_abs_pos_embed(state['pos_embed'], (4, 4), (6, 5), absolute)
    built_for_grid = MAEViT(img_size=(96, 80), **TINY).eval()
    built_for_grid.load_state_dict(state)
    images = torch.randn(1, 3, 96, 80)
    with torch.no_grad():
        for e, a in zip(built_for_grid(images), model(images)):
            torch.testing.assert_close(a, e, rtol=0, atol=1e-5)


def test_irregular_image_size_as_in_mmseg():
    model = MAEViT(img_size=(234, 345))
    model.init_weights()
    model.train()
    assert model(torch.randn(1, 3, 234, 345))[-1].shape == (1, 768, 14, 21)


def test_resized_positions_are_cached_and_follow_weight_updates():
    model = randomize_(MAEViT(img_size=128, **TINY)).eval()
    images = torch.randn(1, 3, 160, 96)
    with torch.no_grad():
        first = model(images)
        cached = model._grid_positions((10, 6), images.device)
        again = model(images)
        assert model._grid_positions((10, 6), images.device) is cached
        assert len(model._grid_cache) == 1
        torch.testing.assert_close(again[-1], first[-1], rtol=0, atol=0)
        model.layers[3].attn.relative_position_bias_table.mul_(3.0)
        model.pos_embed.add_(0.5)
        updated = model(images)
        assert model._grid_positions((10, 6), images.device) is not cached
    fresh = MAEViT(img_size=128, **TINY).eval()
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(updated[-1], fresh(images)[-1], rtol=0, atol=1e-6)
    assert not torch.allclose(updated[-1], first[-1])


# -- the position cache across autograd modes, dtypes, devices and weight changes -------------

AUTOGRAD_MODES = {
    'inference_mode': torch.inference_mode,
    'no_grad': torch.no_grad,
    'grad': contextlib.nullcontext,
}


def training_step_gradients(model, images):
    """Forward with autograd, backward; the gradients, by parameter name."""
    model.zero_grad(set_to_none=True)
    sum(f.square().mean() for f in model(images)).backward()
    return {name: param.grad.clone() for name, param in model.named_parameters()}


@pytest.mark.parametrize('path', [None, 'fused_sdpa'], ids=['chosen-path', 'dense-path'])
@pytest.mark.parametrize('order', list(itertools.permutations(AUTOGRAD_MODES)), ids='-'.join)
@pytest.mark.parametrize('size', [(64, 64), (96, 80)], ids=['native-grid', 'other-grid'])
def test_every_autograd_mode_in_every_order_then_training(order, size, path):
    """PyTorch Lightning validates under inference_mode, then trains: the cached index and
    positions must not be inference tensors. The dense path under inference_mode builds the
    whole index there, as CUDA or an exporter could."""
    model = randomize_(MAEViT(img_size=64, **TINY)).eval()
    fresh = copy.deepcopy(model)
    images = torch.randn(2, 3, *size)
    with torch.no_grad():
        expected = fresh(images)
    for mode in order:
        forced = use_attention_path(path) if path and mode != 'grad' else contextlib.nullcontext()
        with AUTOGRAD_MODES[mode](), forced:
            outputs = model(images)
        for a, e in zip(outputs, expected):
            torch.testing.assert_close(a.detach(), e, rtol=0, atol=1e-5, msg=mode)
    for entry in model._grid_cache._entries.values():
        kept = [entry.rel_pos_index._dense] + (
            [entry.positions.pos_embed, *entry.positions.bias_tables] if entry.positions else []
        )
        assert not any(t is not None and t.is_inference() for t in kept)
    model.train()
    fresh.train()
    gradients = training_step_gradients(model, images)
    for name, grad in training_step_gradients(fresh, images).items():
        torch.testing.assert_close(gradients[name], grad, rtol=1e-5, atol=1e-6, msg=name)
    with torch.inference_mode():  # and back to inference after training
        model.eval()(images)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float64])
def test_the_cache_follows_a_change_of_dtype(dtype):
    model = randomize_(MAEViT(img_size=64, **TINY)).eval()
    images = torch.randn(1, 3, 96, 80)
    with torch.inference_mode():
        model(images)  # caches fp32 positions
        model.to(dtype)
        actual = model(images.to(dtype))
    fresh = randomize_(MAEViT(img_size=64, **TINY)).eval().to(dtype)
    with torch.no_grad():
        expected = fresh(images.to(dtype))
    atol = 1e-12 if dtype == torch.float64 else 0
    for a, e in zip(actual, expected):
        assert a.dtype == dtype
        torch.testing.assert_close(a, e, rtol=0, atol=atol)


def test_autocast_after_fp32_inference_equals_autocast_from_scratch():
    model = randomize_(MAEViT(img_size=64, **TINY)).eval()
    fresh = copy.deepcopy(model)
    images = torch.randn(1, 3, 96, 80)
    with torch.inference_mode():
        model(images)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            actual = model(images)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        expected = fresh(images)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, rtol=0, atol=0)


@pytest.mark.parametrize('change', ['load_state_dict', 'optimizer_step'])
def test_cached_positions_follow_new_weights(change):
    """A fitted table cached before new weights arrive would be silently wrong."""
    model = randomize_(MAEViT(img_size=64, **TINY)).eval()
    images = torch.randn(1, 3, 96, 80)
    with torch.inference_mode():
        before = model(images)
    if change == 'load_state_dict':
        other = MAEViT(img_size=64, **TINY)
        with torch.no_grad():
            for param in other.parameters():
                param.copy_(torch.randn_like(param) * 0.3)
        model.load_state_dict(other.state_dict())
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        model.train()
        training_step_gradients(model, images)
        optimizer.step()
        model.eval()
    with torch.inference_mode():
        after = model(images)
    fresh = MAEViT(img_size=64, **TINY).eval()
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        expected = fresh(images)
    assert not torch.allclose(after[-1], before[-1])
    for a, e in zip(after, expected):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-6)


@pytest.mark.cuda
def test_the_cache_follows_a_change_of_device():
    model = randomize_(MAEViT(img_size=64, **TINY)).eval()
    images = torch.randn(1, 3, 96, 80)
    with torch.inference_mode():
        on_cpu = model(images)
        on_cuda = model.cuda()(images.cuda())
        back = model.cpu()(images)
    model.train()
    training_step_gradients(model.cuda(), images.cuda())  # after inference_mode on CUDA
    for a, b, c in zip(on_cpu, on_cuda, back):
        torch.testing.assert_close(b.cpu(), a, rtol=0, atol=1e-4)
        torch.testing.assert_close(c, a, rtol=0, atol=0)


def test_at_img_size_nothing_is_resized():
    model = MAEViT(img_size=64, **TINY).eval()
    with torch.no_grad():
        positions = model._grid_positions((4, 4), torch.device('cpu'))
    assert positions.pos_embed is model.pos_embed
    for layer, table in zip(model.layers, positions.bias_tables):
        torch.testing.assert_close(table, layer.attn.relative_position_bias_table.t())


@pytest.mark.parametrize('size', [(64, 64), (80, 48)])
def test_gradients_reach_every_bias_table(size):
    model = randomize_(MAEViT(img_size=64, drop_path_rate=0.1, **TINY)).train()
    sum(f.square().mean() for f in model(torch.randn(2, 3, *size))).backward()
    for layer in model.layers:
        grad = layer.attn.relative_position_bias_table.grad
        assert grad is not None and grad.abs().sum() > 0
    assert model.pos_embed.grad.abs().sum() > 0


def test_with_cp_gives_the_same_gradients():
    plain = randomize_(MAEViT(img_size=64, **TINY)).train()
    checkpointed = copy.deepcopy(plain)
    checkpointed.with_cp = True
    images = torch.randn(2, 3, 64, 80)
    for model in (plain, checkpointed):
        sum(f.sum() for f in model(images)).backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6, msg=name)


def test_type_checks_as_in_mmseg():
    with pytest.raises(TypeError):
        MAEViT(img_size=512.0)
    with pytest.raises(TypeError):
        MAEViT(out_indices=1.0)
    with pytest.raises(AssertionError):
        MAEViT(img_size=(224, 224, 224))
    with pytest.raises(TypeError):
        MAEViT(pretrained=123)
    with pytest.raises(AssertionError):
        MAEViT(pretrained='a.pth', init_cfg=dict(type='Pretrained', checkpoint='a.pth'))
    with pytest.raises(OSError):
        MAEViT(pretrained='PATH_THAT_DO_NOT_EXIST').init_weights()


def test_mmseg_defaults_and_normalised_indices():
    model = MAEViT(num_layers=4, out_indices=-1, init_values=0.25)
    assert model.out_indices == [3]
    assert torch.all(model.layers[0].gamma_1 == 0.25)
    assert torch.all(model.layers[0].attn.relative_position_bias_table == 0)
    reference = MAE(num_layers=4, out_indices=-1, init_values=0.25)
    ours_shapes = {k: v.shape for k, v in model.state_dict().items()}
    theirs = {
        k: v.shape for k, v in reference.state_dict().items() if 'relative_position_index' not in k
    }
    assert ours_shapes == theirs


def test_pretrained_from_another_grid_is_resized_and_reported(tmp_path, mm_log):
    source = randomize_(MAEViT(img_size=224, **TINY))
    state = {k: v for k, v in source.state_dict().items() if 'gamma' not in k}
    path = tmp_path / 'pretrain.pth'
    torch.save({'state_dict': state}, path)
    model = MAEViT(img_size=512, init_cfg=dict(type='Pretrained', checkpoint=str(path)), **TINY)
    model.init_weights()
    messages = [m for m in mm_log if 'MAEViT: loaded' in m]
    assert len(messages) == 1
    assert (
        'not in the checkpoint, initialised for fine-tuning (8): layers.{0-3}.gamma_1, '
        'layers.{0-3}.gamma_2' in messages[0]
    )
    assert model.pos_embed.shape == (1, 1 + 32 * 32, 96)
    torch.testing.assert_close(model.cls_token, source.cls_token)
    table = model.layers[1].attn.relative_position_bias_table
    assert table.shape[0] == 63 * 63 + 3
    torch.testing.assert_close(table[-3:], source.layers[1].attn.relative_position_bias_table[-3:])


def test_pretrained_from_a_segmentor_checkpoint_with_prefix(tmp_path):
    source = randomize_(MAEViT(img_size=64, **TINY))
    state = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    state['decode_head.conv_seg.weight'] = torch.zeros(3, 3)
    path = tmp_path / 'segmentor.pth'
    torch.save({'meta': {}, 'state_dict': state}, path)
    model = MAEViT(
        img_size=64,
        init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.'),
        **TINY,
    )
    model.init_weights()
    for key, value in source.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)


def test_pretrained_file_that_would_run_code_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ('executed',))

    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'x': Payload()}}, path)
    model = MAEViT(img_size=64, init_cfg=dict(type='Pretrained', checkpoint=str(path)), **TINY)
    with pytest.raises(CheckpointError, match='weights_only=True'):
        model.init_weights()


# -- mmseg's MAE arguments and methods, same outputs --------------------------------------


@pytest.mark.parametrize(
    'out_indices, unmatched, maps',
    [([1, 3, 4], [4], 2), ([3, -1, 1], [-1], 2), ((0, 9, 9), [9, 9], 1), (-2, [-2], 0)],
)
def test_out_indices_that_select_nothing_warn_once_and_are_ignored_as_in_mmseg(
    out_indices, unmatched, maps
):
    kwargs = dict(TINY, out_indices=out_indices)
    with pytest.warns(UserWarning) as record:
        reference, ours = mmseg_pair(img_size=64, **kwargs)
    ours_warnings = [w for w in record if 'MAEViT: out_indices' in str(w.message)]
    assert len(ours_warnings) == 1
    assert f'out_indices {unmatched} select no block of 0..3' in str(ours_warnings[0].message)
    assert f'{maps} maps are returned' in str(ours_warnings[0].message)
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected, actual = reference(images), ours(images)
    assert len(actual) == len(expected) == maps
    for e, a in zip(expected, actual):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-4)


def test_valid_out_indices_do_not_warn(recwarn):
    MAEViT(img_size=64, **TINY)
    MAEViT(img_size=64, **dict(TINY, out_indices=-1))
    assert not [w for w in recwarn if 'out_indices' in str(w.message)]


def test_output_cls_token_adds_the_final_cls_token_to_each_map():
    plain = randomize_(MAEViT(img_size=64, final_norm=True, **TINY)).eval()
    with_cls = MAEViT(img_size=64, final_norm=True, output_cls_token=True, **TINY).eval()
    with_cls.load_state_dict(plain.state_dict())
    tokens = []
    plain.norm1.register_forward_hook(lambda m, i, out: tokens.append(out))
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, actual = plain(images), with_cls(images)
    for e_map, (a_map, a_cls) in zip(expected, actual):
        torch.testing.assert_close(a_map, e_map, rtol=0, atol=0)
        assert a_cls.shape == (2, 96)
    torch.testing.assert_close(actual[-1][1], tokens[0][:, 0], rtol=0, atol=0)


def test_resize_rel_pos_embed_as_mmseg_names_it():
    source = randomize_(MAEViT(img_size=224, **TINY))
    state = dict(source.state_dict())
    state['layers.0.attn.relative_position_index'] = torch.zeros(197, 197, dtype=torch.long)
    checkpoint = {'state_dict': state}
    model = MAEViT(img_size=(256, 320), **TINY)
    returned = model.resize_rel_pos_embed(checkpoint)
    assert returned is state  # in place, as mmseg's
    assert 'layers.0.attn.relative_position_index' not in state
    table = state['layers.2.attn.relative_position_bias_table']
    assert table.shape == ((2 * 16 - 1) * (2 * 20 - 1) + 3, 3)
    # The same tables as loading the original checkpoint resizes to.
    loaded = MAEViT(img_size=(256, 320), **TINY)
    loaded.load_state_dict(source.state_dict())
    torch.testing.assert_close(table, loaded.layers[2].attn.relative_position_bias_table)
    assert model.resize_rel_pos_embed(dict(state)).keys() == state.keys()  # no state_dict key


def test_resize_abs_pos_embed_equals_mmseg():
    pos_embed = torch.randn(1, 1 + 14 * 14, 96)
    reference = MAE(img_size=512, **TINY)
    ours = MAEViT(img_size=512, **TINY)
    expected = reference.resize_abs_pos_embed({'pos_embed': pos_embed.clone()})['pos_embed']
    state = {'pos_embed': pos_embed.clone()}
    assert ours.resize_abs_pos_embed(state) is state
    assert state['pos_embed'].shape == (1, 1 + 32 * 32, 96)
    torch.testing.assert_close(state['pos_embed'], expected, rtol=0, atol=1e-5)


def test_pretrained_loading_goes_through_the_public_resize_methods(tmp_path):
    """As in mmseg's init_weights, so a subclass that overrides them is honoured."""
    calls = []

    class Tracked(MAEViT):
        def resize_rel_pos_embed(self, checkpoint):
            calls.append('rel')
            return super().resize_rel_pos_embed(checkpoint)

        def resize_abs_pos_embed(self, state_dict):
            calls.append('abs')
            return super().resize_abs_pos_embed(state_dict)

    source = randomize_(MAEViT(img_size=224, **TINY))
    path = tmp_path / 'pretrain.pth'
    torch.save({'state_dict': source.state_dict()}, path)
    model = Tracked(img_size=512, init_cfg=dict(type='Pretrained', checkpoint=str(path)), **TINY)
    model.init_weights()
    assert calls == ['rel', 'abs']
    reference = MAEViT(img_size=512, **TINY)
    reference.load_state_dict(source.state_dict())
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, msg=key)
