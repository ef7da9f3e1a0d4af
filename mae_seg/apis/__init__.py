"""The inference API (mmseg's meaning of ``apis``): what ``tools/infer.py`` calls."""

from .inference import (
    IMAGE_SUFFIXES,
    ImageJob,
    build_segmentor,
    check_images_readable,
    find_images,
    fit_dataset_meta,
    plan_outputs,
    segment_image,
)

__all__ = [
    'IMAGE_SUFFIXES',
    'ImageJob',
    'build_segmentor',
    'check_images_readable',
    'find_images',
    'fit_dataset_meta',
    'plan_outputs',
    'segment_image',
]
