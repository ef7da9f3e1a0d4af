"""Hugging Face hub downloads: the weights file of a model folder and what its config.json says.

A hub model folder (``huggingface-cli download facebook/vit-mae-base --local-dir DIR``)
holds ``config.json`` and the weights as ``model.safetensors`` or ``pytorch_model.bin``.
The config fixes what the tensors do not (heads, LayerNorm epsilon) and repeats what they
do (widths, depth, patch and image size); a contradiction means the folder mixes two
models, and is refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, CheckpointNotFoundError, ConversionError
from .architecture import EncoderArchitecture

__all__ = ['HubConfig', 'WEIGHT_FILES', 'find_hub_config', 'hub_weights_file', 'read_hub_config']

# In the order transformers' from_pretrained prefers them.
WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')
CONFIG_FILE = 'config.json'
# transformers' ViTConfig / ViTMAEConfig default, used when a folder has no config.json.
TRANSFORMERS_LAYER_NORM_EPS = 1e-12


@dataclass(frozen=True)
class HubConfig:
    """The parts of a transformers ``ViTMAEConfig`` / ``ViTConfig`` the converter uses.

    Attributes:
        path: the ``config.json`` it was read from.
        values: its whole content.
    """

    path: str
    values: Mapping[str, Any]

    @property
    def model_type(self) -> str:
        """``'vit_mae'`` (MAE pretraining) or ``'vit'`` (a fine-tuned classifier)."""
        return str(self.values.get('model_type', 'vit_mae'))

    @property
    def num_heads(self) -> int | None:
        heads = self.values.get('num_attention_heads')
        return int(heads) if heads is not None else None

    @property
    def layer_norm_eps(self) -> float:
        return float(self.values.get('layer_norm_eps', TRANSFORMERS_LAYER_NORM_EPS))

    def check(self, architecture: EncoderArchitecture) -> None:
        """Refuse a config that contradicts the tensors or describes a ViT MAEViT is not.

        Raises:
            ConversionError: naming the config entry, its value and the tensors' value.
        """
        arch = architecture
        facts = {
            'hidden_size': arch.embed_dims,
            'num_hidden_layers': arch.num_layers,
            'intermediate_size': arch.mlp_ratio * arch.embed_dims,
            'num_channels': arch.in_channels,
            'patch_size': arch.patch_size,
            'image_size': arch.img_size,
        }
        for key, actual in facts.items():
            stated = self.values.get(key)
            if isinstance(stated, (list, tuple)) and len(set(stated)) == 1:
                stated = stated[0]
            if stated is not None and stated != actual:
                raise ConversionError(
                    f'{self.path} says {key} {stated!r} but the weights have {actual}; the '
                    'folder mixes files of two models'
                )
        unsupported = {
            'hidden_act': ('gelu', self.values.get('hidden_act', 'gelu')),
            'qkv_bias': (True, self.values.get('qkv_bias', True)),
        }
        for key, (needed, stated) in unsupported.items():
            if stated != needed:
                raise ConversionError(
                    f'{self.path} sets {key} {stated!r}; MAEViT is built for {needed!r} only'
                )


def read_hub_config(path: str | os.PathLike) -> HubConfig:
    """Read a transformers ``config.json``.

    Raises:
        CheckpointError: it is not a JSON object.
    """
    try:
        values = json.loads(Path(path).read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f'{path} is not a readable JSON config: {error}') from error
    if not isinstance(values, dict):
        raise CheckpointError(f'{path} is not a transformers config (no JSON object)')
    return HubConfig(str(path), values)


def find_hub_config(weights_path: str) -> HubConfig | None:
    """The ``config.json`` beside a local weights file, if there is one."""
    if not os.path.isfile(weights_path):
        return None
    candidate = Path(weights_path).parent / CONFIG_FILE
    return read_hub_config(candidate) if candidate.is_file() else None


def hub_weights_file(folder: str | os.PathLike) -> str:
    """The weights file of a hub model folder.

    Raises:
        CheckpointError: the folder has no single weights file (none, or only shards).
    """
    folder = Path(folder)
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return str(folder / name)
    shards = sorted(p.name for p in folder.glob('*.index.json'))
    if shards:
        raise CheckpointError(
            f'{folder} holds a sharded checkpoint ({shards[0]}), which the converter does not '
            'read; load it with transformers and save_pretrained(..., max_shard_size="20GB")'
        )
    raise CheckpointNotFoundError(
        f'folder {folder} has neither {" nor ".join(WEIGHT_FILES)}; give a checkpoint file or '
        'a Hugging Face hub model folder'
    )
