"""mmcv's compiled ops are present and compute correct results on the CPU."""

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
