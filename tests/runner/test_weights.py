"""Every checkpoint a run loads must fit its model: load_from, resume, Pretrained inits."""

import logging
from pathlib import Path

import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mae_seg.errors import CheckpointError, ConfigError
from mae_seg.runner.weights import check_weights_fit, fit_load_from


def save_segmentor(cfg, path):
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, path)
    return model.state_dict()


@pytest.fixture
def five_class_checkpoint(tmp_path, tiny_config):
    path = tmp_path / 'five.pth'
    save_segmentor(tiny_config(), path)
    return path


def test_testing_with_another_class_count_is_refused(tmp_path, five_class_checkpoint, tiny_config):
    cfg = tiny_config(num_classes=3, load_from=str(five_class_checkpoint))
    with pytest.raises(CheckpointError) as raised:
        check_weights_fit(cfg, training=False)
    message = str(raised.value)
    assert message.startswith(f'checkpoint {five_class_checkpoint} does not fit the model of ')
    assert 'decode_head.conv_seg.weight (5, 16, 1, 1) vs (3, 16, 1, 1)' in message
    assert 'use the config the checkpoint was trained with' in message
    assert '\n' not in message


def test_fine_tuning_from_another_class_count_names_the_setting(
    tmp_path, five_class_checkpoint, tiny_config
):
    cfg = tiny_config(num_classes=3, load_from=str(five_class_checkpoint))
    with pytest.raises(CheckpointError) as raised:
        check_weights_fit(cfg, training=True)
    assert "load_from_reinit = ['decode_head.conv_seg', 'auxiliary_head.conv_seg']" in str(
        raised.value
    )
    cfg.load_from_reinit = ['decode_head.conv_seg', 'auxiliary_head.conv_seg']
    check_weights_fit(cfg, training=True)


def test_reinit_loads_everything_else_and_keeps_the_fresh_head(
    tmp_path, five_class_checkpoint, tiny_config
):
    cfg = tiny_config(num_classes=3)
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    fresh = model.decode_head.conv_seg.weight.detach().clone()
    source = torch.load(five_class_checkpoint, weights_only=True)['state_dict']
    state, reinit = fit_load_from(
        source, model, 'five.pth', ['decode_head.conv_seg', 'auxiliary_head.conv_seg']
    )
    assert reinit == [
        'auxiliary_head.conv_seg.bias', 'auxiliary_head.conv_seg.weight',
        'decode_head.conv_seg.bias', 'decode_head.conv_seg.weight',
    ]  # fmt: skip
    model.load_state_dict(state, strict=False)
    torch.testing.assert_close(model.decode_head.conv_seg.weight, fresh, atol=0, rtol=0)
    torch.testing.assert_close(
        model.backbone.layers[1].attn.qkv.weight,
        source['backbone.layers.1.attn.qkv.weight'],
        atol=0,
        rtol=0,
    )


def test_reinit_that_names_nothing_or_without_load_from_is_an_error(
    five_class_checkpoint, tiny_config
):
    cfg = tiny_config(
        num_classes=3, load_from=str(five_class_checkpoint),
        load_from_reinit=['decode_head.conv_sge'],
    )  # fmt: skip
    with pytest.raises(ConfigError, match="'decode_head.conv_sge' names no key of the model"):
        check_weights_fit(cfg, training=True)
    cfg = tiny_config(load_from_reinit=['decode_head.conv_seg'])
    with pytest.raises(ConfigError, match='load_from is not set'):
        check_weights_fit(cfg, training=True)
    # The fine-tuning config tests its own checkpoints: the list does not apply there.
    cfg = tiny_config(
        load_from=str(five_class_checkpoint), load_from_reinit=['decode_head.conv_seg']
    )
    check_weights_fit(cfg, training=False)


def test_resuming_a_work_dir_of_another_config_is_refused(
    tmp_path, five_class_checkpoint, tiny_config
):
    cfg = tiny_config(num_classes=3, resume=True)
    work = Path(cfg.work_dir)
    work.mkdir()
    (work / 'iter_4.pth').write_bytes(five_class_checkpoint.read_bytes())
    (work / 'last_checkpoint').write_text(str(work / 'iter_4.pth'))
    with pytest.raises(CheckpointError, match='resume with that config, or train in a new'):
        check_weights_fit(cfg, training=True)


def test_a_checkpoint_of_the_same_config_fits(tmp_path, five_class_checkpoint, tiny_config):
    check_weights_fit(tiny_config(load_from=str(five_class_checkpoint)), training=False)


def test_missing_and_unexpected_keys_of_a_whole_model_are_refused(
    tmp_path, five_class_checkpoint, tiny_config
):
    state = torch.load(five_class_checkpoint, weights_only=True)
    del state['state_dict']['neck.upsample_4x.0.weight']
    state['state_dict']['head.fc.weight'] = torch.zeros(2)
    partial = tmp_path / 'partial.pth'
    torch.save(state, partial)
    with pytest.raises(CheckpointError) as raised:
        check_weights_fit(tiny_config(load_from=str(partial)), training=False)
    assert 'missing neck.upsample_4x.{0}.weight; unexpected head.fc.weight' in str(raised.value)


def backbone_checkpoint(tiny_config, tmp_path, drop=(), add=None):
    """An MAE-style encoder checkpoint: no layer scales or relative position tables."""
    cfg = tiny_config()
    init_default_scope('mmseg')
    backbone = MODELS.build(cfg.model.backbone).state_dict()
    state = {
        k: v for k, v in backbone.items()
        if 'gamma' not in k and 'relative_position' not in k and not k.startswith(drop)
    }  # fmt: skip
    state.update(
        add or {'mask_token': torch.zeros(1, 1, 64), 'decoder_embed.weight': torch.zeros(2)}
    )
    path = tmp_path / 'mae.pth'
    torch.save({'model': state}, path)
    return path


def test_pretrained_encoder_without_fine_tuning_parts_loads(tmp_path, mm_log, tiny_config):
    path = backbone_checkpoint(tiny_config, tmp_path)
    cfg = tiny_config(**{'model.pretrained': str(path)})
    check_weights_fit(cfg, training=True)
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    model.init_weights()
    (line,) = [m for m in mm_log if 'MAEViT: loaded' in m]
    assert 'initialised for fine-tuning (12): layers.{0-3}.gamma_1' in line
    assert 'ignored (2): mask_token, decoder_embed.weight' in line


def test_pretrained_encoder_missing_a_block_is_refused(tmp_path, tiny_config):
    path = backbone_checkpoint(tiny_config, tmp_path, drop=('layers.3.',))
    cfg = tiny_config(**{'model.pretrained': str(path)})
    with pytest.raises(CheckpointError) as raised:
        check_weights_fit(cfg, training=True)
    message = str(raised.value)
    assert message.startswith(f'pretrained checkpoint {path} does not fit the model: missing')
    assert 'layers.{3}.ln1.weight' in message and 'mae2mmseg.py' in message
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    with pytest.raises(CheckpointError):
        model.init_weights()  # the load itself refuses too


def test_pretrained_init_of_another_module_is_checked(tmp_path, five_class_checkpoint, tiny_config):
    head = {
        'type': 'Pretrained',
        'checkpoint': str(five_class_checkpoint),
        'prefix': 'auxiliary_head.',
    }
    cfg = tiny_config(**{'model.decode_head.init_cfg': head})
    with pytest.raises(CheckpointError) as raised:
        check_weights_fit(cfg, training=True)
    assert str(raised.value).startswith(
        f"decode_head.init_cfg: checkpoint {five_class_checkpoint} under 'auxiliary_head.' "
        'does not fit the model: missing'
    )
    head['prefix'] = 'decode_head.'
    check_weights_fit(tiny_config(**{'model.decode_head.init_cfg': head}), training=True)


def test_the_runner_load_itself_is_strict(five_class_checkpoint, tiny_config):
    """Where the run loads (a Runner built from Python, without the checks before it)."""
    from mae_seg.runner import build_runner

    runner = build_runner(tiny_config(num_classes=3))
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    runner.logger.addHandler(handler)
    fresh = runner.model.decode_head.conv_seg.weight.detach().clone()
    with pytest.raises(CheckpointError, match='conv_seg.weight .5, 16, 1, 1. vs .3, 16, 1, 1.'):
        runner.load_checkpoint(str(five_class_checkpoint))
    runner.cfg.load_from_reinit = ['decode_head.conv_seg', 'auxiliary_head.conv_seg']
    runner._load_purpose = 'train'  # as Runner.train() sets it
    runner.load_checkpoint(str(five_class_checkpoint))
    torch.testing.assert_close(runner.model.decode_head.conv_seg.weight, fresh, atol=0, rtol=0)
    source = torch.load(five_class_checkpoint, weights_only=True)['state_dict']
    torch.testing.assert_close(
        runner.model.neck.upsample_4x[0].weight,
        source['neck.upsample_4x.0.weight'],
        atol=0,
        rtol=0,
    )
    assert any(
        'decode_head.conv_seg.bias, decode_head.conv_seg.weight (load_from_reinit), loaded the rest'
        in message
        for message in messages
    )


def test_a_test_time_augmentation_model_loads_into_its_module(five_class_checkpoint, tiny_config):
    cfg = tiny_config(load_from=str(five_class_checkpoint))
    cfg.model = dict(type='BatchedSlideSegTTAModel', module=cfg.model)
    check_weights_fit(cfg, training=False)
    cfg.model.module.decode_head.num_classes = 3
    with pytest.raises(CheckpointError, match=r'decode_head.conv_seg.weight \(5, 16, 1, 1\)'):
        check_weights_fit(cfg, training=False)
