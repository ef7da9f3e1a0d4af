"""Running an exported segmentor in onnxruntime: whole images, or sliding windows.

Needs only numpy and onnxruntime, so it also serves where PyTorch is not installed.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import ConfigError
from ..models.segmentors.sliding_windows import sliding_windows
from .export import INPUT_NAME, OUTPUT_NAME

__all__ = ['OnnxSegmentor', 'OPTIMIZATION_LEVELS']

#: onnxruntime's graph optimisation levels by the names the tools take.
OPTIMIZATION_LEVELS = ('disable', 'basic', 'extended', 'all')


class OnnxSegmentor:
    """An exported segmentor (``mae_seg.deploy.export``) in an onnxruntime CPU session.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (``None``: onnxruntime's default, one per core).
        optimization: graph optimisation level, one of :data:`OPTIMIZATION_LEVELS`.

    Raises:
        ConfigError: the file is missing, not an ONNX model, or not the export contract
            (one float input ``input`` and output ``seg_logits``, 4-D).
    """

    def __init__(self, path: str, threads: int | None = None, optimization: str = 'all') -> None:
        import onnxruntime as ort

        if not os.path.isfile(path):
            raise ConfigError(f'ONNX model {path} does not exist')
        if optimization not in OPTIMIZATION_LEVELS:
            raise ConfigError(f'optimization {optimization!r} is not one of {OPTIMIZATION_LEVELS}')
        options = ort.SessionOptions()
        options.graph_optimization_level = {
            'disable': ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            'basic': ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            'extended': ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            'all': ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[optimization]
        if threads is not None:
            options.intra_op_num_threads = threads
        # A failing run raises with the same message that onnxruntime would also log.
        options.log_severity_level = 4
        try:
            self.session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph types
            first_line = str(error).strip().splitlines()[0]
            raise ConfigError(f'{path} is not a runnable ONNX model: {first_line}') from error
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != [INPUT_NAME] or OUTPUT_NAME not in [o.name for o in outputs]:
            raise ConfigError(
                f'{path} takes {[i.name for i in inputs]} and gives {[o.name for o in outputs]}; '
                f'an exported segmentor takes {INPUT_NAME!r} and gives {OUTPUT_NAME!r} '
                '(tools/deployment/pytorch2onnx.py)'
            )
        self.input_shape = list(inputs[0].shape)

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """``(H, W)`` of a file exported without ``--dynamic``; ``None`` for any size."""
        height, width = self.input_shape[2:]
        if isinstance(height, int) and isinstance(width, int):
            return height, width
        return None

    @property
    def fixed_batch(self) -> int | None:
        """The batch size of a file exported without ``--dynamic``; ``None`` for any."""
        batch = self.input_shape[0]
        return batch if isinstance(batch, int) else None

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """``(N, 3, H, W)`` RGB in ``[0, 255]`` -> ``(N, num_classes, H, W)`` logits.

        Raises:
            ConfigError: a file of fixed size given another size, or a run that fails
                (an image below 2 patches a side).
        """
        fixed = self.fixed_size
        if fixed is not None and tuple(images.shape[2:]) != fixed:
            raise ConfigError(
                f'the model was exported for {fixed[0]}x{fixed[1]} images only, got '
                f'{images.shape[2]}x{images.shape[3]}: export with --dynamic'
            )
        images = np.ascontiguousarray(images, dtype=np.float32)
        if self.fixed_batch is not None and images.shape[0] != self.fixed_batch:
            return np.concatenate([self(image[None]) for image in images])
        try:
            return self.session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]
        except Exception as error:  # onnxruntime's Fail / InvalidArgument
            first_line = str(error).strip().splitlines()[0]
            raise ConfigError(
                f'onnxruntime cannot run the model on {images.shape[2]}x{images.shape[3]} '
                f'images (a ViT needs at least 2 patches a side): {first_line}'
            ) from error

    def slide(
        self,
        images: np.ndarray,
        crop_size: tuple[int, int],
        stride: tuple[int, int],
        window_batch_size: int = 1,
    ) -> np.ndarray:
        """Logits of mmseg's slide inference (``EncoderDecoder.slide_inference``).

        Windows of ``crop_size`` every ``stride`` pixels, ``window_batch_size`` of them a
        run; each pixel's logits averaged over the windows that cover it.

        Args:
            images: ``(N, 3, H, W)`` RGB in ``[0, 255]``.
            crop_size: window ``(h, w)``.
            stride: step ``(h, w)`` between windows.
            window_batch_size: windows (of all N images) a session run.

        Returns:
            ``(N, num_classes, H, W)`` logits.
        """
        windows = sliding_windows(images.shape[2:], tuple(crop_size), tuple(stride))
        sums = counts = None
        for start in range(0, len(windows), window_batch_size):
            chunk = windows[start : start + window_batch_size]
            crops = np.concatenate([images[:, :, y1:y2, x1:x2] for y1, y2, x1, x2 in chunk])
            logits = self(crops)
            if sums is None:
                sums = np.zeros((images.shape[0], logits.shape[1], *images.shape[2:]), np.float32)
                counts = np.zeros((1, 1, *images.shape[2:]), np.float32)
            for i, (y1, y2, x1, x2) in enumerate(chunk):
                batch = logits[i * images.shape[0] : (i + 1) * images.shape[0]]
                sums[:, :, y1:y2, x1:x2] += batch
                counts[:, :, y1:y2, x1:x2] += 1
        return sums / counts
