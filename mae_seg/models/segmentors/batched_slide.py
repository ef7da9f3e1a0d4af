"""Sliding-window inference with the windows run as batches, for one image or all TTA views."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmseg.models import EncoderDecoder, SegTTAModel
from mmseg.registry import MODELS

from .sliding_windows import Window, sliding_windows

__all__ = ['BatchedSlideEncoderDecoder', 'BatchedSlideSegTTAModel']

DEFAULT_WINDOW_BATCH_SIZE = 8


@MODELS.register_module()
class BatchedSlideEncoderDecoder(EncoderDecoder):
    """mmseg's ``EncoderDecoder`` whose slide inference runs its windows as batches.

    mmseg's ``slide_inference`` sends one window at a time through backbone and heads,
    which leaves a GPU mostly idle at one image a batch. Here up to
    ``test_cfg.window_batch_size`` windows (default 8; 1 is mmseg's way) go together, and
    their logits are summed into the image in mmseg's order, so the result is mmseg's up to
    the rounding of batched kernels (tested against ``EncoderDecoder.slide_inference``).

    An image smaller than the network takes (mmseg fails on it, e.g. "Kernel size can't be
    greater than actual input size" for an image smaller than a patch) is padded at its
    bottom and right, as mmseg pads training crops (``data_preprocessor.pad_val`` after
    normalisation), to a window (``test_cfg.crop_size``) in slide mode, or in whole mode to
    the training crop (``data_preprocessor.size``, else the backbone's ``img_size``); the
    logits of the padding are cut off again. Larger images are run as in mmseg.
    Arguments, training and state dicts are those of ``EncoderDecoder``.
    """

    @property
    def window_batch_size(self) -> int:
        return int(self.test_cfg.get('window_batch_size', DEFAULT_WINDOW_BATCH_SIZE))

    def whole_inference(self, inputs: torch.Tensor, batch_img_metas: list[dict]) -> torch.Tensor:
        """``(B, C_in, H, W)`` images -> ``(B, num_classes, H, W)`` logits, small images padded."""
        height, width = inputs.shape[2:]
        padded = self._pad_to(inputs, self._whole_min_size())
        if padded is inputs:
            return super().whole_inference(inputs, batch_img_metas)
        # decode_head resizes its logits to img_shape: the padded size, then cut.
        metas = [dict(meta, img_shape=tuple(padded.shape[2:])) for meta in batch_img_metas]
        return super().whole_inference(padded, metas)[:, :, :height, :width]

    def _whole_min_size(self) -> tuple[int, int] | None:
        """The training crop: the smallest input whole inference is sure to take."""
        size = getattr(self.data_preprocessor, 'size', None)
        if size is None:
            size = getattr(self.backbone, 'img_size', None)
        if size is None:
            return None
        return (size, size) if isinstance(size, int) else tuple(size)

    def _pad_to(self, inputs: torch.Tensor, size: Sequence[int] | None) -> torch.Tensor:
        """``inputs`` padded at the bottom and right to at least ``size`` (itself if there)."""
        if size is None:
            return inputs
        pad_h, pad_w = max(size[0] - inputs.shape[2], 0), max(size[1] - inputs.shape[3], 0)
        if not (pad_h or pad_w):
            return inputs
        value = getattr(self.data_preprocessor, 'pad_val', 0)
        return F.pad(inputs, (0, pad_w, 0, pad_h), value=value)

    def slide_inference(self, inputs: torch.Tensor, batch_img_metas: list[dict]) -> torch.Tensor:
        """``(B, C_in, H, W)`` images -> ``(B, num_classes, H, W)`` averaged window logits."""
        return self.slide_logits([inputs], [batch_img_metas])[0]

    def slide_logits(
        self, images: Sequence[torch.Tensor], img_metas: Sequence[list[dict]]
    ) -> list[torch.Tensor]:
        """Slide inference of several batches of images (e.g. the views of test-time
        augmentation) with the windows of all of them batched together.

        Args:
            images: ``(B_i, C_in, H_i, W_i)`` each, sizes may differ.
            img_metas: the ``B_i`` meta dicts of each.

        Returns:
            ``(B_i, num_classes, H_i, W_i)`` logits of each, as ``slide_inference`` gives;
            images smaller than a window are padded to one, their logits cut back.
        """
        crop, stride = self.test_cfg.crop_size, self.test_cfg.stride
        sizes = [tuple(image.shape[2:]) for image in images]
        images = [self._pad_to(image, crop) for image in images]
        sums = [x.new_zeros((x.shape[0], self.out_channels, *x.shape[2:])) for x in images]
        counts = [x.new_zeros((x.shape[0], 1, *x.shape[2:])) for x in images]
        # Windows of one size can share a batch; an image's windows all have one size, and
        # keep their order, so each pixel's logits are summed in mmseg's order.
        by_size: dict[tuple[int, int], list[tuple[int, Window]]] = {}
        for index, image in enumerate(images):
            for window in sliding_windows(tuple(image.shape[2:]), crop, stride):
                size = (window[1] - window[0], window[3] - window[2])
                by_size.setdefault(size, []).append((index, window))
        for jobs in by_size.values():
            for chunk in self._chunks(jobs, images):
                crops = torch.cat([images[i][:, :, y1:y2, x1:x2] for i, (y1, y2, x1, x2) in chunk])
                # decode_head resizes its logits to the first meta's img_shape, as in mmseg.
                metas = [
                    dict(meta, img_shape=crops.shape[2:]) for i, _ in chunk for meta in img_metas[i]
                ]
                logits = self.encode_decode(crops, metas)
                start = 0
                for i, (y1, y2, x1, x2) in chunk:
                    batch = images[i].shape[0]
                    sums[i][:, :, y1:y2, x1:x2] += logits[start : start + batch]
                    counts[i][:, :, y1:y2, x1:x2] += 1
                    start += batch
        return [
            (total / count)[:, :, :height, :width]
            for total, count, (height, width) in zip(sums, counts, sizes)
        ]

    def _chunks(self, jobs: list, images: Sequence[torch.Tensor]) -> list[list]:
        """Consecutive jobs with at most ``window_batch_size`` crops each (at least one job)."""
        chunks: list[list] = [[]]
        crops = 0
        for job in jobs:
            batch = images[job[0]].shape[0]
            if chunks[-1] and crops + batch > self.window_batch_size:
                chunks.append([])
                crops = 0
            chunks[-1].append(job)
            crops += batch
        return chunks


@MODELS.register_module()
class BatchedSlideSegTTAModel(SegTTAModel):
    """mmseg's ``SegTTAModel`` that batches the sliding windows of all augmented views.

    mmseg runs the views (scales x flips) one after another, each window alone. With a
    :class:`BatchedSlideEncoderDecoder` in slide mode, the windows of all views of an image
    go through the network in batches instead; views, merge and results are mmseg's.
    Any other module is tested view by view as in mmseg.
    """

    def test_step(self, data: dict | list) -> list:
        module = self.module
        if not isinstance(module, BatchedSlideEncoderDecoder) or module.test_cfg.mode != 'slide':
            return super().test_step(data)
        views = [module.data_preprocessor(view, False) for view in _split_views(data)]
        logits = module.slide_logits(
            [view['inputs'] for view in views],
            [[sample.metainfo for sample in view['data_samples']] for view in views],
        )
        predictions = [
            module.postprocess_result(view_logits, view['data_samples'])
            for view_logits, view in zip(logits, views)
        ]
        return self.merge_preds(list(zip(*predictions)))


def _split_views(data: dict | list) -> list:
    """One batch per augmentation from a test-time-augmentation batch, as mmengine's
    ``BaseTTAModel.test_step`` splits it."""
    if isinstance(data, dict):
        num_views = len(data[next(iter(data))])
        return [{key: value[i] for key, value in data.items()} for i in range(num_views)]
    if isinstance(data, (tuple, list)):
        return [[part[i] for part in data] for i in range(len(data[0]))]
    raise TypeError(f'test-time augmentation data must be a dict, list or tuple, got {data!r}')
