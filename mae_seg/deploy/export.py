"""A segmentor as one ONNX graph: RGB pixels in, logits at the input's size out.

The contract of the exported file (``docs/deployment.md``):

- input ``input``: float32 ``(N, 3, H, W)``, RGB pixel values in ``[0, 255]``; the data
  preprocessor's channel order, mean and std are inside the graph;
- output ``seg_logits``: float32 ``(N, num_classes, H, W)``, the whole-image logits of
  ``EncoderDecoder.encode_decode`` at the input's size (no argmax).

With ``dynamic=True`` N, H and W are symbolic: MAEViT computes its position fitting (absolute
embedding and relative bias tables resized to the token grid, the relative position index)
inside the graph, so one file serves every image size. The exporter is torch's dynamo one
(``torch.onnx.export(..., dynamo=True)``): it traces with symbolic sizes and refuses to
export where the model fixes a size, where the TorchScript exporter would silently record
the example's sizes as constants. Adaptive average pooling (UPerNet's pyramid pooling) is
swapped for a size-generic form while exporting (:mod:`.pooling`).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..io import atomic_output, check_output_path
from .pooling import exportable_pooling

__all__ = [
    'DEFAULT_OPSET',
    'INPUT_NAME',
    'OUTPUT_NAME',
    'SegmentorForExport',
    'MIN_PATCHES',
    'export_onnx',
    'min_input_size',
]

INPUT_NAME = 'input'
OUTPUT_NAME = 'seg_logits'
#: The lowest opset torch's dynamo exporter writes without converting versions.
DEFAULT_OPSET = 18
#: Fewest patches a side an input may have: the decode head's feature pyramid pools the
#: token grid by 2 (a 1x1 grid fails inside torch.export and onnxruntime).
MIN_PATCHES = 2
#: Terminal colour codes in torch.export's messages.
ANSI_CODE = re.compile(r'\x1b\[[0-9;]*m')
#: Names of the symbolic dimensions of a dynamic export, as the file shows them.
DYNAMIC_DIMS = {0: 'batch', 2: 'height', 3: 'width'}


class SegmentorForExport(nn.Module):
    """``EncoderDecoder.encode_decode`` on RGB pixels, normalised inside: what is exported.

    Args:
        segmentor: an mmseg ``EncoderDecoder`` (or subclass) in eval mode; its
            ``data_preprocessor`` gives mean, std and channel order.

    Raises:
        ConfigError: the data preprocessor pads test images (``test_cfg`` with ``size`` or
            ``size_divisor``), which the graph does not do.
    """

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        preprocessor = segmentor.data_preprocessor
        if getattr(preprocessor, 'test_cfg', None):
            raise ConfigError(
                f'data_preprocessor.test_cfg={preprocessor.test_cfg} pads test images; the '
                'exported graph takes images as they are: remove it from the config'
            )
        self.segmentor = segmentor
        # mmseg's images are loaded BGR; without channel conversion the model was trained
        # on BGR, and the RGB input is flipped back inside the graph.
        self.flip_channels = not getattr(preprocessor, 'channel_conversion', False)
        if getattr(preprocessor, '_enable_normalize', False):
            mean, std = preprocessor.mean.view(1, -1, 1, 1), preprocessor.std.view(1, -1, 1, 1)
        else:
            mean, std = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
        self.register_buffer('mean', mean.clone().float(), persistent=False)
        self.register_buffer('std', std.clone().float(), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` RGB in ``[0, 255]`` -> ``(N, num_classes, H, W)`` logits."""
        if self.flip_channels:
            images = images.flip(1)
        inputs = (images - self.mean) / self.std
        # decode_head.predict resizes its logits to img_shape, here the input's own size.
        return self.segmentor.encode_decode(inputs, [dict(img_shape=inputs.shape[2:])])


def min_input_size(model: SegmentorForExport) -> int:
    """The smallest height and width (pixels) ``model`` runs on: :data:`MIN_PATCHES`
    patches of its backbone (16 pixels where the backbone names no ``patch_size``)."""
    patch = getattr(model.segmentor.backbone, 'patch_size', 16)
    patch = max(patch) if isinstance(patch, (tuple, list)) else int(patch)
    return MIN_PATCHES * patch


def check_export_size(model: SegmentorForExport, shape: Sequence[int]) -> None:
    """Raises ConfigError for an example size below :func:`min_input_size` a side."""
    smallest = min_input_size(model)
    if min(shape) < smallest:
        raise ConfigError(
            f'--shape {shape[0]} {shape[1]} is too small: the model needs at least '
            f'{MIN_PATCHES} patches a side, {smallest}x{smallest} pixels'
        )


def check_opset(opset: int) -> None:
    """Raises ConfigError for an opset the installed onnx does not know."""
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if not 7 <= opset <= newest:
        raise ConfigError(f'--opset {opset}: the installed onnx knows opsets 7 to {newest}')


def export_onnx(
    model: SegmentorForExport,
    path: str | os.PathLike,
    shape: Sequence[int] = (512, 512),
    dynamic: bool = False,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
) -> None:
    """Export ``model`` to ``path`` (one file, weights inside), atomically.

    Args:
        model: the wrapped segmentor, on the CPU, in eval mode.
        path: the ``.onnx`` file to write.
        shape: ``(H, W)`` of the example input; with ``dynamic`` any size >= 2 patches per
            side runs, else only this one (batch 1).
        dynamic: N, H and W symbolic (``batch``, ``height``, ``width``).
        opset: ONNX opset of the file's default domain.
        overwrite: replace an existing ``path``.

    Raises:
        ConfigError: ``shape`` is below :func:`min_input_size` a side; ``path`` exists
            (without ``overwrite``), is a folder or cannot be written; the opset is unknown
            or cannot express an op of the model; the model does not export.
    """
    import onnx

    check_export_size(model, shape)
    check_opset(opset)
    check_output_path(path, overwrite)
    # A batch of 2: torch.export takes a size of 1 for a constant.
    example = torch.rand(2 if dynamic else 1, 3, *shape) * 255
    # Named dimensions are symbolic (Dim.DYNAMIC) and keep their names in the file.
    dynamic_shapes = {'images': DYNAMIC_DIMS} if dynamic else None
    try:
        with atomic_output(path) as temporary:
            with exportable_pooling(model):
                program = _export_program(model, example, dynamic_shapes, opset)
            # Where an op has no form in the asked opset, the exporter keeps a newer one.
            written = program.model.opset_imports.get('')
            if written != opset:
                raise ConfigError(
                    f'--opset {opset} cannot express every op of this model (the exporter '
                    f'fell back to opset {written}); use --opset {DEFAULT_OPSET} or newer'
                )
            program.save(temporary, external_data=False)
            onnx.checker.check_model(str(temporary))
    except OSError as error:
        raise ConfigError(f'output {path} cannot be written: {error}') from error


def _export_program(model: nn.Module, example: torch.Tensor, dynamic_shapes, opset: int):
    """``torch.onnx.export(dynamo=True)`` quietly: its progress lines and version-converter
    traces are not the user's concern; a failure becomes one ConfigError."""
    import contextlib
    import io
    import logging

    quiet = io.StringIO()
    # torch.export logs its failures (fake-tensor tracebacks, dozens of lines) on loggers
    # of its own below 'torch' with their own handlers: all logging is off while it runs.
    disabled = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
            warnings.simplefilter('ignore')
            return torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                dynamic_shapes=dynamic_shapes,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                verbose=False,
            )
    except ConfigError:
        raise
    except Exception as error:  # torch.export and onnxscript raise many types
        raise ConfigError(
            f'the model does not export to ONNX: {type(error).__name__}: {_first_line(error)}'
        ) from error
    finally:
        logging.disable(disabled)


def _first_line(error: BaseException) -> str:
    """The first line of ``error``'s message without colour codes, with its cause's where
    the message is only torch.onnx's "Failed to export ... step 1/3" preamble."""
    lines = [line.strip() for line in ANSI_CODE.sub('', str(error)).splitlines()]
    first = next((line for line in lines if line), '')
    cause = error.__cause__
    if first.startswith('Failed to export the model') and cause is not None:
        # The preamble names the step and the next ones; the cause says what failed.
        first = first.split('. ', 1)[0] + f': {type(cause).__name__}: {_first_line(cause)}'
    return first
