"""ONNX export of a segmentor with MAEViT: any size from one file, the documented contract,
onnxruntime (the reference runtime) against PyTorch."""

import numpy as np
import onnx
import pytest
import torch

from mae_seg.deploy import OnnxSegmentor, export_onnx, unseen_sizes, verify_onnx

# None of them is the 128x128 the export saw; 70x90 is no multiple of the patch size.
UNSEEN = [(96, 160), (200, 136), (64, 64), (48, 80), (70, 90)]


@pytest.mark.parametrize('size', UNSEEN)
def test_dynamic_export_matches_pytorch_at_sizes_it_never_saw(tiny_wrapped, tiny_onnx, size):
    _, model = tiny_wrapped
    images = torch.rand(3, 3, *size) * 255
    with torch.no_grad():
        expected = model(images)
    actual = torch.from_numpy(OnnxSegmentor(str(tiny_onnx))(images.numpy()))
    assert actual.shape == (3, 5, *size)
    torch.testing.assert_close(actual, expected, atol=1e-3, rtol=0)


def test_graph_takes_rgb_pixels_and_normalises_as_mmseg(tiny_wrapped, tiny_onnx):
    """mmseg's own data preprocessor (BGR loaded image -> RGB, mean/std) and encode_decode
    give what the file gives for the same image as RGB."""
    segmentor, _ = tiny_wrapped
    bgr = torch.randint(0, 256, (3, 80, 112), dtype=torch.uint8)
    with torch.no_grad():
        data = segmentor.data_preprocessor(dict(inputs=[bgr]), False)
        expected = segmentor.encode_decode(data['inputs'], [dict(img_shape=(80, 112))])
    rgb = bgr.flip(0).float().numpy()[None]
    actual = torch.from_numpy(OnnxSegmentor(str(tiny_onnx))(rgb))
    torch.testing.assert_close(actual, expected, atol=1e-3, rtol=0)


def test_contract_names_types_and_symbolic_dims(tiny_onnx):
    graph = onnx.load(str(tiny_onnx)).graph
    (given,), (taken,) = graph.input, graph.output

    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    assert given.name == 'input' and taken.name == 'seg_logits'
    assert given.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert taken.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert dims(given) == ['batch', 3, 'height', 'width']
    assert dims(taken) == ['batch', 5, 'height', 'width']


def test_static_export_takes_its_size_only(tiny_wrapped, tmp_path):
    from mae_seg.errors import ConfigError

    _, model = tiny_wrapped
    path = tmp_path / 'static.onnx'
    export_onnx(model, path, (64, 96))
    session = OnnxSegmentor(str(path))
    assert (session.fixed_size, session.fixed_batch) == ((64, 96), 1)
    checks = verify_onnx(model, str(path), [(64, 96)], batch=2)
    assert checks[0].output_shape == (2, 5, 64, 96) and checks[0].max_abs_diff < 1e-3
    with pytest.raises(ConfigError, match='exported for 64x96 images only'):
        session(np.zeros((1, 3, 64, 64), np.float32))


def test_verify_reports_each_size(tiny_wrapped, tiny_onnx):
    checks = verify_onnx(tiny_wrapped[1], str(tiny_onnx), [(128, 128), (96, 160)])
    assert [(c.size, c.output_shape) for c in checks] == [
        ((128, 128), (2, 5, 128, 128)),
        ((96, 160), (2, 5, 96, 160)),
    ]
    assert all(0 < c.max_abs_diff < 1e-3 for c in checks)


def test_slide_matches_mmseg_slide_inference(tiny_wrapped, tiny_onnx):
    segmentor, model = tiny_wrapped
    images = torch.rand(2, 3, 128, 300) * 255
    inputs = (images - model.mean) / model.std
    with torch.no_grad():
        expected = segmentor.slide_inference(inputs, [dict(img_shape=(128, 300))] * 2)
    session = OnnxSegmentor(str(tiny_onnx))
    for window_batch_size in (1, 3):
        actual = session.slide(images.numpy(), (128, 128), (85, 85), window_batch_size)
        torch.testing.assert_close(torch.from_numpy(actual), expected, atol=1e-3, rtol=0)


def test_image_below_two_patches_is_a_clear_error(tiny_onnx):
    from mae_seg.errors import ConfigError

    session = OnnxSegmentor(str(tiny_onnx))
    assert session(np.zeros((1, 3, 32, 40), np.float32)).shape == (1, 5, 32, 40)
    with pytest.raises(ConfigError, match='cannot run the model on 16x48 images'):
        session(np.zeros((1, 3, 16, 48), np.float32))


def test_padding_preprocessor_is_refused(tiny_wrapped):
    from mae_seg.deploy import SegmentorForExport
    from mae_seg.errors import ConfigError

    segmentor, _ = tiny_wrapped
    segmentor.data_preprocessor.test_cfg = dict(size_divisor=32)
    try:
        with pytest.raises(ConfigError, match='pads test images'):
            SegmentorForExport(segmentor)
    finally:
        segmentor.data_preprocessor.test_cfg = None


@pytest.mark.parametrize(
    'size, expected',
    [((128, 128), [(96, 160), (200, 136)]), ((32, 32), [(32, 40), (50, 34)])],
)
def test_unseen_sizes_keep_two_patches_a_side(size, expected):
    assert unseen_sizes(size, min_size=32) == expected


def test_export_failure_is_one_clean_line(tiny_wrapped, capfd):
    """Below 2 patches torch.export fails: one line without colour codes, and none of
    torch's own log lines on stderr."""
    from mae_seg.deploy.export import _export_program
    from mae_seg.errors import ConfigError

    example = torch.rand(1, 3, 16, 16) * 255
    with pytest.raises(ConfigError, match='the model does not export to ONNX: ') as error:
        _export_program(tiny_wrapped[1], example, None, 18)
    message = str(error.value)
    assert '\n' not in message and '\x1b' not in message
    assert capfd.readouterr().err == ''
