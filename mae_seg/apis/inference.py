"""Segmenting image files with a trained model: what ``tools/infer.py`` calls.

The model is built by mmseg's ``init_model`` and run by its ``inference_model`` (the
config's test pipeline and ``test_cfg``); what is added here is what a command line needs:
inputs given as files, folders or globs, a checkpoint checked against the config before it
is loaded (mmengine loads a mismatching one with a warning), and outputs that are never
half-written.
"""

from __future__ import annotations

import glob
import os.path as osp
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from mmengine.config import Config
from PIL import Image

from ..errors import ConfigError
from ..io import atomic_output, extract_state_dict, load_checkpoint_file
from ..runner.config import is_tta_model, load_config
from ..runner.weights import fit_load_from, model_build_errors

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

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def _is_image(path: str) -> bool:
    return osp.isfile(path) and path.lower().endswith(IMAGE_SUFFIXES)


def find_images(inputs: Sequence[str]) -> list[str]:
    """Image files named by ``inputs``: files, folders (their images, not recursive) and
    glob patterns, in the order given, each folder and pattern sorted, no duplicates.

    Raises:
        ConfigError: an input that does not exist, or a folder or pattern without images.
    """
    found: list[str] = []
    for item in inputs:
        if osp.isdir(item):
            matches = sorted(p for p in glob.glob(osp.join(glob.escape(item), '*')) if _is_image(p))
            what = f'folder {item} holds no images ({", ".join(IMAGE_SUFFIXES)})'
        elif glob.has_magic(item):
            matches = sorted(p for p in glob.glob(item, recursive=True) if _is_image(p))
            what = f'pattern {item} matches no images'
        elif osp.isfile(item):
            matches = [item]
            what = ''
        else:
            raise ConfigError(f'input {item} does not exist')
        if not matches:
            raise ConfigError(what)
        found.extend(osp.normpath(p) for p in matches)
    return list(dict.fromkeys(found))


def check_images_readable(paths: Sequence[str]) -> None:
    """Each file is an image that can be decoded (headers checked, pixels not read).

    Raises:
        ConfigError: naming the first file that is not.
    """
    for path in paths:
        try:
            with Image.open(path) as image:
                image.verify()
        except Exception as error:  # PIL raises several types for broken files
            raise ConfigError(f'cannot read image {path}: {error}') from error


@dataclass(frozen=True)
class ImageJob:
    """One input image and the two files written for it."""

    image: str
    label_map: str
    overlay: str


def plan_outputs(images: Sequence[str], out_dir: str) -> list[ImageJob]:
    """Output paths: ``out_dir/labels/NAME.png`` (class indices) and
    ``out_dir/overlays/NAME.png``, NAME being the image's path relative to the folder all
    inputs share, without its suffix, so images of different folders do not collide.

    Raises:
        ConfigError: ``out_dir`` is a file, or two inputs would write the same files
            (``a.jpg`` and ``a.png``).
    """
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise ConfigError(f'--out-dir {out_dir} is a file; give a folder')
    absolute = [osp.abspath(path) for path in images]
    root = osp.commonpath([osp.dirname(path) for path in absolute])
    jobs, owners = [], {}
    for image, path in zip(images, absolute):
        name = osp.splitext(osp.relpath(path, root))[0]
        if name in owners:
            raise ConfigError(
                f'{owners[name]} and {image} would both be written as {name}.png; '
                'rename one or segment them in separate runs'
            )
        owners[name] = image
        jobs.append(
            ImageJob(
                image,
                osp.join(out_dir, 'labels', name + '.png'),
                osp.join(out_dir, 'overlays', name + '.png'),
            )
        )
    return jobs


def build_segmentor(
    config: str,
    checkpoint: str,
    device: str = 'cpu',
    mode: str | None = None,
    window_batch_size: int | None = None,
    cfg_options: dict | None = None,
) -> torch.nn.Module:
    """mmseg's ``init_model`` on ``config`` with ``checkpoint`` checked, then loaded.

    Args:
        config: a single-scale config (a TTA config is refused).
        checkpoint: segmentor weights, e.g. ``work_dirs/.../iter_160000.pth``; read with
            ``weights_only=True``.
        device: ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.
        mode: ``'whole'`` or ``'slide'`` to override ``model.test_cfg.mode``.
        window_batch_size: sliding windows a forward pass (``test_cfg.window_batch_size``
            of :class:`~mae_seg.models.BatchedSlideEncoderDecoder`).
        cfg_options: further overrides of the config.

    Raises:
        ConfigError: the config cannot be read, is a TTA config or cannot be built, or the
            device does not exist.
        CheckpointError: the checkpoint is missing or unreadable, or does not fit the
            config (:func:`~mae_seg.runner.weights.fit_load_from`).
    """
    from mmseg.apis import init_model

    cfg = load_config(config, cfg_options, check=True)
    if is_tta_model(cfg.model):
        raise ConfigError(
            f'{config} tests with test-time augmentation ({cfg.model.type}); '
            'give the single-scale config it is derived from'
        )
    _check_device(device)
    if mode is not None:
        cfg.model.test_cfg.mode = mode
    if window_batch_size is not None:
        cfg.model.test_cfg.window_batch_size = window_batch_size
    if cfg.model.test_cfg.get('mode') == 'slide' and 'crop_size' not in cfg.model.test_cfg:
        raise ConfigError(f'slide inference needs model.test_cfg.crop_size and stride in {config}')
    loaded = load_checkpoint_file(checkpoint)
    state_dict = extract_state_dict(loaded)
    with model_build_errors(f'building the model of {config}'):
        model = init_model(_without_pretrained(cfg), None, device='cpu')
    state_dict, _ = fit_load_from(state_dict, model, checkpoint, purpose='test', target=config)
    model.load_state_dict(state_dict)
    meta = loaded.get('meta', {}) if isinstance(loaded, dict) else {}
    dataset_meta = meta.get('dataset_meta') if isinstance(meta, dict) else None
    model.dataset_meta = fit_dataset_meta(
        dataset_meta, model.decode_head.num_classes, f'checkpoint {checkpoint}'
    )
    return model.to(device).eval()


def fit_dataset_meta(dataset_meta: dict | None, num_classes: int, source: str) -> dict:
    """Class names and one colour per class for the model's ``num_classes`` outputs.

    A checkpoint without class names gets ``'0'``, ``'1'``, ...; one without a palette, or
    with one of another length, gets fixed random colours (mmseg's visualizer would take
    Cityscapes' 19 and refuse any other class count).

    Raises:
        ConfigError: the checkpoint names another number of classes than the model has.
    """
    meta = dict(dataset_meta or {})
    classes = meta.get('classes')
    if classes is None:
        classes = tuple(str(i) for i in range(num_classes))
    elif len(classes) != num_classes:
        raise ConfigError(
            f'{source} names {len(classes)} classes in meta.dataset_meta and its model has '
            f'{num_classes} outputs: use the config the checkpoint was trained with'
        )
    palette = meta.get('palette')
    if palette is None or len(palette) != num_classes:
        palette = np.random.default_rng(0).integers(0, 256, (num_classes, 3)).tolist()
    return {**meta, 'classes': tuple(classes), 'palette': [list(c) for c in palette]}


def _without_pretrained(cfg: Config) -> Config:
    """The checkpoint replaces every weight: pretrained backbone files are not read."""
    cfg.model.pretrained = None
    if isinstance(cfg.model.get('backbone'), dict):
        cfg.model.backbone.init_cfg = None
    return cfg


def _check_device(device: str) -> None:
    if device == 'cpu':
        return
    if device.startswith('cuda'):
        if not torch.cuda.is_available():
            raise ConfigError(f'--device {device}: this machine has no CUDA GPU; use --device cpu')
        index = device.partition(':')[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise ConfigError(f'--device {device}: there are {torch.cuda.device_count()} GPUs')
        return
    raise ConfigError(f'--device {device} is not cpu, cuda or cuda:N')


def segment_image(model: torch.nn.Module, job: ImageJob, visualizer) -> np.ndarray:
    """Segment one image with mmseg's ``inference_model`` and write its two files.

    Args:
        model: from :func:`build_segmentor`.
        job: the image and its output paths.
        visualizer: an mmseg ``SegLocalVisualizer`` with the model's classes and palette.

    Returns:
        the label map ``(H, W)`` at the image's size.

    Raises:
        ConfigError: the image cannot be decoded.
    """
    from mmseg.apis import inference_model

    image = cv2.imread(job.image, cv2.IMREAD_COLOR)
    if image is None:
        raise ConfigError(f'cannot read image {job.image}')
    with torch.no_grad():
        result = inference_model(model, image)
    labels = result.pred_sem_seg.data[0].cpu().numpy()
    labels = labels.astype(np.uint8 if labels.max(initial=0) < 256 else np.uint16)
    _write_png(job.label_map, labels)
    visualizer.add_datasample(
        osp.basename(job.image),
        image[..., ::-1],
        result,
        draw_gt=False,
        draw_pred=True,
        show=False,
        with_labels=False,
    )
    _write_png(job.overlay, visualizer.get_image()[..., ::-1])
    return labels


def _write_png(path: str, array: np.ndarray) -> None:
    ok, encoded = cv2.imencode('.png', np.ascontiguousarray(array))
    if not ok:
        raise ConfigError(f'cannot encode {path}')
    with atomic_output(path) as temporary:  # makes the folder, renames when complete
        temporary.write_bytes(encoded.tobytes())
