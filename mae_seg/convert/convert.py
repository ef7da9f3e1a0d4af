"""Converting an MAE ViT encoder checkpoint of any known layout to MAEViT names.

The output file is ``{'meta': {...}, 'state_dict': {MAEViT name: tensor}}``: the layout
mmengine writes, which every reader of ``init_cfg=dict(type='Pretrained', checkpoint=...)``
takes, namely MAEViT, mmseg's ``MAE`` (its ``resize_rel_pos_embed`` looks in
``state_dict``) and mmengine's ``load_checkpoint``. ``meta`` holds only strings, numbers and
containers, so the file loads with ``weights_only=True``.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace

import torch

from ..errors import CheckpointError, ConversionError
from ..io.download import is_url
from ..io.loading import extract_state_dict, load_checkpoint_file
from ..io.writing import save_checkpoint_file
from ..version import __version__
from .architecture import EncoderArchitecture, infer_architecture
from .hub import TRANSFORMERS_LAYER_NORM_EPS, HubConfig, find_hub_config, hub_weights_file
from .layouts import LAYOUTS, ConvertedState, Layout, detect_layout

__all__ = ['Conversion', 'convert_checkpoint', 'convert_state_dict', 'save_conversion']


@dataclass(frozen=True)
class Conversion:
    """A converted encoder with what is needed to report on it and verify it.

    Attributes:
        source: the path or URL it came from.
        layout: the source layout.
        source_state_dict: the source tensors under their original names.
        converted: the MAEViT-named tensors and the dropped source keys.
        architecture: what the tensors fix of the ViT.
        hub_config: the ``config.json`` of a transformers checkpoint, checked against the
            tensors, if there is one.
    """

    source: str
    layout: Layout
    source_state_dict: dict[str, torch.Tensor]
    converted: ConvertedState
    architecture: EncoderArchitecture
    hub_config: HubConfig | None = None

    @property
    def norm_eps(self) -> float:
        """LayerNorm epsilon of the source model: transformers' from its config, MAE's 1e-6."""
        if self.hub_config is not None:
            return self.hub_config.layer_norm_eps
        return TRANSFORMERS_LAYER_NORM_EPS if self.layout == 'transformers' else 1e-6

    @property
    def config_num_heads(self) -> int | None:
        """The head count the source's config states, if it has one."""
        return self.hub_config.num_heads if self.hub_config is not None else None

    @property
    def state_dict(self) -> dict[str, torch.Tensor]:
        """MAEViT-named encoder tensors."""
        return self.converted.state_dict

    def to_checkpoint(self) -> dict:
        """The object written to the output file (see the module docstring)."""
        return {
            'meta': {
                'mae_seg_version': __version__,
                'source': self.source
                if is_url(self.source)
                else posixpath.basename(self.source.rstrip('/')),
                'source_layout': self.layout,
                'architecture': asdict(self.architecture),
                'norm_eps': self.norm_eps,
            },
            'state_dict': self.state_dict,
        }


def _check_layout(layout: str) -> None:
    if layout != 'auto' and layout not in LAYOUTS:
        raise ConversionError(f'unknown layout {layout!r}; choose auto, {", ".join(LAYOUTS)}')


def convert_state_dict(
    state_dict: Mapping[str, torch.Tensor], layout: str = 'auto', source: str = '<state dict>'
) -> Conversion:
    """Map a state dict to MAEViT names and check that it is a complete encoder.

    Args:
        state_dict: tensors under the names of ``layout``.
        layout: ``'official'``, ``'mmpretrain'``, ``'mmseg'``, ``'transformers'`` or
            ``'auto'`` (detect).
        source: where it came from, for messages.

    Raises:
        ConversionError: unknown layout, keys the layout does not know, or an incomplete or
            inconsistent encoder.
    """
    _check_layout(layout)
    if layout == 'auto':
        layout = detect_layout(state_dict)
    converted = LAYOUTS[layout](state_dict)
    architecture = infer_architecture(converted.state_dict)
    return Conversion(source, layout, dict(state_dict), converted, architecture)


def convert_checkpoint(
    path: str,
    layout: str = 'auto',
    cache_dir: str | os.PathLike | None = None,
) -> Conversion:
    """Load a checkpoint safely and convert it.

    Args:
        path: a local file or ``http(s)://`` URL (torch or safetensors), or a Hugging Face
            hub model folder; the ``config.json`` of a folder, or beside a transformers
            weights file, is read and checked against the tensors.
        layout: see :func:`convert_state_dict`.
        cache_dir: download cache for URLs.

    Raises:
        CheckpointError: the file cannot be read or loaded safely, or does not convert
            (:class:`ConversionError`), or its config contradicts it.
    """
    _check_layout(layout)
    weights_path = hub_weights_file(path) if os.path.isdir(path) else path
    checkpoint = load_checkpoint_file(weights_path, cache_dir=cache_dir)
    try:
        conversion = convert_state_dict(extract_state_dict(checkpoint), layout, source=path)
        if conversion.layout == 'transformers':
            hub_config = find_hub_config(weights_path)
            if hub_config is not None:
                hub_config.check(conversion.architecture)
                conversion = replace(conversion, hub_config=hub_config)
        return conversion
    except CheckpointError as error:
        raise type(error)(f'{path}: {error}') from error


def save_conversion(
    conversion: Conversion, path: str | os.PathLike, overwrite: bool = False
) -> None:
    """Write :meth:`Conversion.to_checkpoint` to ``path`` atomically."""
    save_checkpoint_file(conversion.to_checkpoint(), path, overwrite=overwrite)
