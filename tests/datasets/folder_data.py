"""Folder data sets in ``tmp_path`` and configs that read them, for the data-set tests.

A module of its own (not conftest.py) so that tests import it by a name no other test
folder shares.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from mmengine.config import Config
from PIL import Image

import mae_seg  # noqa: F401 - registers MinSizeResize and friends


def write_pair(root: Path, split: str, name: str, labels: np.ndarray, mode: str | None = None):
    """An RGB image and its annotation (``labels`` saved in ``mode``, default 'L')."""
    height, width = labels.shape[:2]
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    (root / 'images' / split).mkdir(parents=True, exist_ok=True)
    (root / 'annotations' / split).mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(root / 'images' / split / f'{name}.png')
    # Pillow infers 'L', 'I;16' and 'RGB' from the array; 'LA', 'RGBA' and 'P' are asked for.
    annotation = (
        Image.fromarray(labels) if mode in (None, 'I;16', 'RGB') else Image.fromarray(labels, mode)
    )
    path = root / 'annotations' / split / f'{name}.png'
    annotation.save(path)
    return path


def folder_config(root: Path, num_classes: int = 3, **dataset) -> Config:
    """A config whose train/val dataloaders read ``root`` with mmseg's ``BaseSegDataset``."""

    def loader(split):
        return dict(
            batch_size=1,
            dataset=dict(
                type='BaseSegDataset',
                data_root=str(root),
                data_prefix=dict(img_path=f'images/{split}', seg_map_path=f'annotations/{split}'),
                img_suffix='.png',
                seg_map_suffix='.png',
                metainfo=dict(classes=tuple(f'c{i}' for i in range(num_classes))),
                pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')],
                **dataset,
            ),
        )

    return Config(
        dict(
            default_scope='mmseg',
            model=dict(
                decode_head=dict(num_classes=num_classes),
                auxiliary_head=dict(num_classes=num_classes),
            ),
            train_dataloader=loader('train'),
            val_dataloader=loader('val'),
        )
    )
