"""Deploying a segmentor without mmdeploy: one ONNX file for any image size, run by
onnxruntime and checked against PyTorch (``docs/deployment.md``).

Needs the ``deploy`` extra (onnx, onnxruntime, onnxscript). :mod:`.evaluate` (which needs
mmseg's data sets) is imported on its own.
"""

from .export import (
    DEFAULT_OPSET,
    INPUT_NAME,
    MIN_PATCHES,
    OUTPUT_NAME,
    SegmentorForExport,
    export_onnx,
    min_input_size,
)
from .runtime import OPTIMIZATION_LEVELS, OnnxSegmentor
from .verify import SizeCheck, unseen_sizes, verify_onnx

__all__ = [
    'DEFAULT_OPSET',
    'INPUT_NAME',
    'MIN_PATCHES',
    'OPTIMIZATION_LEVELS',
    'OUTPUT_NAME',
    'OnnxSegmentor',
    'SegmentorForExport',
    'SizeCheck',
    'export_onnx',
    'min_input_size',
    'unseen_sizes',
    'verify_onnx',
]
