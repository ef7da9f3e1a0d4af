"""mmcv's compiled ops are present and compute correct results on the CPU."""

import pytest
import torch


def test_mmcv_extension_is_compiled():
    from mmcv.utils import ext_loader

    ext = ext_loader.load_ext('_ext', ['nms', 'roi_align_forward'])
    assert hasattr(ext, 'nms')


def test_nms_matches_a_hand_computed_answer():
    from mmcv.ops import nms

    boxes = torch.tensor(
        [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], dtype=torch.float32
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    _, keep = nms(boxes, scores, iou_threshold=0.5)
    # Box 1 overlaps box 0 with IoU 0.68 and box 3 with IoU 0.9: both suppressed.
    assert keep.tolist() == [0, 2]


def test_roi_align_averages_a_constant_map_to_the_constant():
    from mmcv.ops import roi_align

    features = torch.full((1, 2, 16, 16), 3.0)
    rois = torch.tensor([[0, 2.0, 2.0, 9.0, 9.0]])
    out = roi_align(features, rois, output_size=(4, 4), spatial_scale=1.0, sampling_ratio=2)
    torch.testing.assert_close(out, torch.full((1, 2, 4, 4), 3.0))


class _ExtCallRecorder:
    """Records the names of the functions of mmcv's compiled extension that get called.

    Every mmcv op reaches its kernel through an attribute of the one ``mmcv._ext`` module,
    looked up at call time, so wrapping those attributes sees every compiled-op call.
    """

    def __init__(self):
        import importlib

        self.ext = importlib.import_module('mmcv._ext')
        self.called: set[str] = set()
        self._originals: dict = {}

    def __enter__(self):
        for name in dir(self.ext):
            function = getattr(self.ext, name)
            if name.startswith('_') or not callable(function):
                continue
            self._originals[name] = function
            setattr(self.ext, name, self._recording(name, function))
        return self

    def _recording(self, name, function):
        def call(*args, **kwargs):
            self.called.add(name)
            return function(*args, **kwargs)

        return call

    def __exit__(self, *exc):
        for name, function in self._originals.items():
            setattr(self.ext, name, function)


def test_the_recorder_sees_a_compiled_op_call():
    from mmcv.ops import nms

    with _ExtCallRecorder() as recorder:
        nms(torch.rand(4, 4) * 10 + torch.tensor([0, 0, 10, 10]), torch.rand(4), 0.5)
    assert recorder.called == {'nms'}


def _segmentor_of_the_vit_b_config():
    """The ViT-B UPerNet config's segmentor, every module type kept, sizes made small."""
    from pathlib import Path

    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import mae_seg  # noqa: F401  (registers our classes)

    config = Path(__file__).resolve().parents[1] / 'configs/mae'
    cfg = Config.fromfile(str(config / 'mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py'))
    init_default_scope('mmseg')
    model = cfg.model
    model.pretrained = None
    model.backbone.update(img_size=64, embed_dims=64, num_layers=4, num_heads=2)
    model.backbone.out_indices = [0, 1, 2, 3]
    model.neck.embed_dim = 64
    model.decode_head.update(in_channels=[64] * 4, channels=32)
    model.auxiliary_head.update(in_channels=64, channels=16)
    model.test_cfg = dict(mode='slide', crop_size=(64, 64), stride=(43, 43))
    model.data_preprocessor.size = (64, 64)
    return revert_sync_batchnorm(MODELS.build(model))


@pytest.mark.slow
def test_the_configs_segmentor_calls_no_mmcv_op():
    """The UPerNet + MAEViT configs need mmcv's compiled extension only because mmseg imports
    it: a training step and sliding-window inference call none of its functions (so
    tools/setup_env.sh builds the CPU ops only)."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    model = _segmentor_of_the_vit_b_config()
    mmcv_modules = sorted(
        {type(m).__qualname__ for m in model.modules() if 'mmcv.ops' in type(m).__module__}
    )

    def sample(height, width):
        data_sample = SegDataSample()
        label = torch.randint(0, 150, (1, height, width))
        data_sample.gt_sem_seg = PixelData(data=label)
        data_sample.set_metainfo(dict(img_shape=(height, width), ori_shape=(height, width)))
        return data_sample

    with _ExtCallRecorder() as recorder:
        model.train()
        batch = dict(
            inputs=[torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8)] * 2,
            data_samples=[sample(64, 64), sample(64, 64)],
        )
        data = model.data_preprocessor(batch, training=True)
        losses = model.loss(**data)
        sum(v for k, v in losses.items() if k.endswith('loss_ce')).backward()
        model.eval()
        with torch.no_grad():
            batch = dict(
                inputs=[torch.randint(0, 255, (3, 64, 86), dtype=torch.uint8)],
                data_samples=[sample(64, 86)],
            )
            data = model.data_preprocessor(batch, training=False)
            prediction = model.predict(**data)
    assert prediction[0].pred_sem_seg.data.shape == (1, 64, 86)  # the slide path ran
    print(
        f'mmcv compiled ops called: {sorted(recorder.called) or "none"}; '
        f'mmcv.ops modules: {mmcv_modules or "none"}'
    )
    assert recorder.called == set()
    assert mmcv_modules == []
