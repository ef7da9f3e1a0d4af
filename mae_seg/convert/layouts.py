"""Key layouts of MAE ViT encoder checkpoints and pure mappings to MAEViT's names.

Four layouts are known, each mapped by one function:

- ``official``: the MAE release and timm (``blocks.<i>.norm1``, ``patch_embed.proj``,
  ``norm``); its decoder (``mask_token``, ``decoder_*``) and classifier (``fc_norm``,
  ``head``) are dropped;
- ``mmpretrain``: mmpretrain / mmselfsup / mmcls (``backbone.layers.<i>.ln1``, layer scales
  ``attn.gamma1.weight`` / ``ffn.gamma2.weight``); ``neck``, ``head``,
  ``target_generator``, ``data_preprocessor`` and the pooled-feature norm ``ln2`` are dropped;
- ``mmseg``: mmseg's ``MAE`` and MAEViT themselves, bare or as a segmentor's ``backbone.``;
  passed through, with heads and the recomputed ``relative_position_index`` dropped;
- ``transformers``: Hugging Face transformers' ``ViTMAEForPreTraining`` (the hub's
  ``facebook/vit-mae-*``, ``vit.encoder.layer.<i>``), ``ViTMAEModel`` (no ``vit.``) and
  ``ViTModel`` / ``ViTForImageClassification`` fine-tuned classifiers; separate ``query``,
  ``key``, ``value`` projections are concatenated into ``qkv``; ``decoder``,
  ``classifier``, ``pooler`` and the unused ``mask_token`` are dropped.

A key no rule knows is an error rather than silently lost, so checkpoints of other ViT
variants (register tokens, qk-norm, ...) are refused instead of converted wrongly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable, Literal

import torch

from ..errors import ConversionError
from ..io.summary import summarize_keys

__all__ = [
    'LAYOUTS',
    'ConvertedState',
    'Layout',
    'describe_layout',
    'detect_layout',
    'mae_vit_to_timm',
    'mmpretrain_to_mae_vit',
    'mmseg_to_mae_vit',
    'official_to_mae_vit',
    'transformers_to_mae_vit',
]

Layout = Literal['official', 'mmpretrain', 'mmseg', 'transformers']

# (pattern matched against the whole key, replacement with groups; None drops the key)
Rule = tuple[str, 'str | None']

_DESCRIPTIONS = {
    'official': 'official MAE / timm',
    'mmpretrain': 'mmpretrain / mmselfsup',
    'mmseg': 'mmseg MAE / MAEViT',
    'transformers': 'transformers ViTMAE / ViT (Hugging Face hub)',
    'timm': 'timm VisionTransformer',
}


@dataclass(frozen=True)
class ConvertedState:
    """The outcome of a key mapping.

    Attributes:
        state_dict: the renamed tensors.
        dropped: source keys that are not encoder weights (decoder, heads, buffers).
        renamed: how many kept keys changed name.
    """

    state_dict: dict[str, torch.Tensor]
    dropped: list[str] = field(default_factory=list)
    renamed: int = 0


_OFFICIAL_RULES: tuple[Rule, ...] = (
    (r'(cls_token|pos_embed)', r'\1'),
    (r'patch_embed\.proj\.(weight|bias)', r'patch_embed.projection.\1'),
    (r'blocks\.(\d+)\.norm([12])\.(weight|bias)', r'layers.\1.ln\2.\3'),
    (r'blocks\.(\d+)\.attn\.(qkv|proj)\.(weight|bias)', r'layers.\1.attn.\2.\3'),
    (r'blocks\.(\d+)\.mlp\.fc1\.(weight|bias)', r'layers.\1.ffn.layers.0.0.\2'),
    (r'blocks\.(\d+)\.mlp\.fc2\.(weight|bias)', r'layers.\1.ffn.layers.1.\2'),
    (r'blocks\.(\d+)\.ls([12])\.gamma', r'layers.\1.gamma_\2'),
    (r'norm\.(weight|bias)', r'ln1.\1'),
    (r'(mask_token|decoder_\w+|fc_norm|head)(\..+)?', None),
)

_BACKBONE = r'(?:backbone\.)?'
_MM_LAYER_PARTS = (
    r'ln[12]\.(?:weight|bias)|attn\.(?:qkv|proj)\.(?:weight|bias)'
    r'|ffn\.layers\.(?:0\.0|1)\.(?:weight|bias)'
)
_MM_STEM_RULES: tuple[Rule, ...] = (
    (rf'{_BACKBONE}(cls_token|pos_embed)', r'\1'),
    (rf'{_BACKBONE}(patch_embed\.projection\.(?:weight|bias))', r'\1'),
    (rf'{_BACKBONE}(ln1\.(?:weight|bias))', r'\1'),
)

_MMPRETRAIN_RULES: tuple[Rule, ...] = (
    *_MM_STEM_RULES,
    (rf'{_BACKBONE}(layers\.\d+\.)({_MM_LAYER_PARTS})', r'\1\2'),
    (rf'{_BACKBONE}(layers\.\d+\.)attn\.gamma1\.weight', r'\1gamma_1'),
    (rf'{_BACKBONE}(layers\.\d+\.)ffn\.gamma2\.weight', r'\1gamma_2'),
    (rf'{_BACKBONE}ln2\..+', None),
    (r'(neck|head|target_generator|data_preprocessor)\..+', None),
)

_MMSEG_RULES: tuple[Rule, ...] = (
    *_MM_STEM_RULES,
    (
        rf'{_BACKBONE}(layers\.\d+\.)({_MM_LAYER_PARTS}|gamma_[12]'
        r'|attn\.relative_position_bias_table)',
        r'\1\2',
    ),
    (rf'{_BACKBONE}layers\.\d+\.attn\.relative_position_index', None),
    (r'(decode_head|auxiliary_head|neck|data_preprocessor)\..+', None),
)

_VIT = r'(?:vit\.)?'
_HF_LAYER = rf'{_VIT}encoder\.layer\.(\d+)\.'
# q, k and v get temporary names here and are concatenated by _merge_qkv.
_TRANSFORMERS_RULES: tuple[Rule, ...] = (
    (rf'{_VIT}embeddings\.cls_token', 'cls_token'),
    (rf'{_VIT}embeddings\.position_embeddings', 'pos_embed'),
    (
        rf'{_VIT}embeddings\.patch_embeddings\.projection\.(weight|bias)',
        r'patch_embed.projection.\1',
    ),
    (rf'{_HF_LAYER}layernorm_before\.(weight|bias)', r'layers.\1.ln1.\2'),
    (rf'{_HF_LAYER}layernorm_after\.(weight|bias)', r'layers.\1.ln2.\2'),
    (
        rf'{_HF_LAYER}attention\.attention\.(query|key|value)\.(weight|bias)',
        r'layers.\1.attn.\2.\3',
    ),
    (rf'{_HF_LAYER}attention\.output\.dense\.(weight|bias)', r'layers.\1.attn.proj.\2'),
    (rf'{_HF_LAYER}intermediate\.dense\.(weight|bias)', r'layers.\1.ffn.layers.0.0.\2'),
    (rf'{_HF_LAYER}output\.dense\.(weight|bias)', r'layers.\1.ffn.layers.1.\2'),
    (rf'{_VIT}layernorm\.(weight|bias)', r'ln1.\1'),
    (rf'(?:decoder|classifier|{_VIT}pooler)\..+|{_VIT}embeddings\.mask_token', None),
)
_QKV_PART = re.compile(r'(layers\.\d+\.attn\.)(query|key|value)\.(weight|bias)')

_TIMM_RULES: tuple[Rule, ...] = (
    (r'(cls_token|pos_embed)', r'\1'),
    (r'patch_embed\.projection\.(weight|bias)', r'patch_embed.proj.\1'),
    (r'layers\.(\d+)\.ln([12])\.(weight|bias)', r'blocks.\1.norm\2.\3'),
    (r'layers\.(\d+)\.attn\.(qkv|proj)\.(weight|bias)', r'blocks.\1.attn.\2.\3'),
    (r'layers\.(\d+)\.ffn\.layers\.0\.0\.(weight|bias)', r'blocks.\1.mlp.fc1.\2'),
    (r'layers\.(\d+)\.ffn\.layers\.1\.(weight|bias)', r'blocks.\1.mlp.fc2.\2'),
    (r'layers\.(\d+)\.gamma_([12])', r'blocks.\1.ls\2.gamma'),
    (r'ln1\.(weight|bias)', r'norm.\1'),
    (r'layers\.\d+\.attn\.relative_position_bias_table', None),
)


def _first_match(key: str, rules: tuple[Rule, ...]) -> tuple[re.Match, str | None] | None:
    for pattern, replacement in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return match, replacement
    return None


def _apply_rules(
    state_dict: Mapping[str, torch.Tensor], rules: tuple[Rule, ...], layout: str
) -> ConvertedState:
    """Rename every key by the first rule whose pattern matches all of it.

    Raises:
        ConversionError: a key matches no rule, or two keys get the same name.
    """
    converted: dict[str, torch.Tensor] = {}
    dropped, unknown, renamed = [], [], 0
    for key, value in state_dict.items():
        found = _first_match(key, rules)
        if found is None:
            unknown.append(key)
            continue
        match, replacement = found
        if replacement is None:
            dropped.append(key)
            continue
        new_key = match.expand(replacement)
        if new_key in converted:
            raise ConversionError(
                f'two tensors of the {_DESCRIPTIONS[layout]} checkpoint map to {new_key}; '
                'it mixes a backbone and a bare encoder'
            )
        converted[new_key] = value
        renamed += new_key != key
    if unknown:
        raise ConversionError(
            f'{len(unknown)} keys are not part of an MAE ViT encoder in the '
            f'{_DESCRIPTIONS[layout]} layout: {summarize_keys(unknown, max_items=4)}; '
            'wrong --layout, or a ViT variant the converter does not support (register '
            'tokens, qk-norm, BEiT q/v biases)'
        )
    return ConvertedState(converted, dropped, renamed)


def official_to_mae_vit(state_dict: Mapping[str, torch.Tensor]) -> ConvertedState:
    """Official MAE / timm ViT names -> MAEViT names.

    ``blocks.3.mlp.fc1.weight`` -> ``layers.3.ffn.layers.0.0.weight``, ``norm.*`` -> ``ln1.*``.
    """
    return _apply_rules(state_dict, _OFFICIAL_RULES, 'official')


def mmpretrain_to_mae_vit(state_dict: Mapping[str, torch.Tensor]) -> ConvertedState:
    """mmpretrain / mmselfsup ViT names -> MAEViT names (no ``backbone.``, layer scales renamed)."""
    return _apply_rules(state_dict, _MMPRETRAIN_RULES, 'mmpretrain')


def mmseg_to_mae_vit(state_dict: Mapping[str, torch.Tensor]) -> ConvertedState:
    """mmseg ``MAE`` / MAEViT names, bare or under ``backbone.``, -> the encoder's own names."""
    return _apply_rules(state_dict, _MMSEG_RULES, 'mmseg')


def transformers_to_mae_vit(state_dict: Mapping[str, torch.Tensor]) -> ConvertedState:
    """transformers ViTMAE / ViT names -> MAEViT names, with q, k, v concatenated into ``qkv``.

    ``vit.encoder.layer.3.attention.attention.query.weight`` (and ``key``, ``value``) ->
    ``layers.3.attn.qkv.weight``; ``vit.layernorm.*`` -> ``ln1.*``.
    """
    return _merge_qkv(_apply_rules(state_dict, _TRANSFORMERS_RULES, 'transformers'))


def _merge_qkv(converted: ConvertedState) -> ConvertedState:
    """Concatenate ``<layer>.attn.{query,key,value}.<param>`` into ``<layer>.attn.qkv.<param>``.

    Raises:
        ConversionError: a layer has some of the three projections but not all.
    """
    state_dict: dict[str, torch.Tensor] = {}
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in converted.state_dict.items():
        match = _QKV_PART.fullmatch(key)
        if match is None:
            state_dict[key] = value
        else:
            parts.setdefault(f'{match[1]}qkv.{match[3]}', {})[match[2]] = value
    for key, found in parts.items():
        missing = [name for name in ('query', 'key', 'value') if name not in found]
        if missing:
            raise ConversionError(
                f'{key} cannot be assembled: the checkpoint lacks the {", ".join(missing)} '
                'projection of that layer'
            )
        state_dict[key] = torch.cat([found['query'], found['key'], found['value']], dim=0)
    # Each of q, k and v was counted as renamed; the three are one tensor now.
    renamed = converted.renamed - 2 * len(parts)
    return ConvertedState(state_dict, converted.dropped, renamed)


def mae_vit_to_timm(state_dict: Mapping[str, torch.Tensor]) -> ConvertedState:
    """MAEViT names -> timm ``VisionTransformer`` names; relative position tables are dropped."""
    return _apply_rules(state_dict, _TIMM_RULES, 'timm')


LAYOUTS: dict[str, Callable[[Mapping[str, torch.Tensor]], ConvertedState]] = {
    'official': official_to_mae_vit,
    'mmpretrain': mmpretrain_to_mae_vit,
    'mmseg': mmseg_to_mae_vit,
    'transformers': transformers_to_mae_vit,
}

_OFFICIAL_BLOCK = re.compile(r'blocks\.\d+\.')
_TRANSFORMERS_BLOCK = re.compile(_HF_LAYER)
_MM_LAYER = re.compile(r'(?:backbone\.)?layers\.\d+\.')
_MMSEG_MARK = re.compile(
    r'(?:backbone\.)?layers\.\d+\.(?:gamma_[12]|attn\.relative_position_bias_table)'
    r'|(?:decode_head|auxiliary_head)\..+'
)
_MMPRETRAIN_MARK = re.compile(
    r'(?:backbone\.)?layers\.\d+\.(?:attn\.gamma1|ffn\.gamma2)\.weight'
    r'|neck\.(?:mask_token|decoder_.+)|(?:head|target_generator|data_preprocessor)\..+'
)


def describe_layout(layout: str) -> str:
    """Human name of a layout: ``'official'`` -> ``'official MAE / timm'``."""
    return _DESCRIPTIONS[layout]


def detect_layout(state_dict: Mapping[str, torch.Tensor]) -> Layout:
    """Which layout a state dict is in, judged by its structure rather than a single key.

    ``blocks.<i>.*`` is the official layout, ``[vit.]encoder.layer.<i>.*`` transformers'.
    ``layers.<i>.*`` (bare or under ``backbone.``)
    is shared by mmpretrain and mmseg; mmseg's has layer scales ``gamma_1`` / relative
    position tables in its layers or segmentation heads beside them, mmpretrain's has
    ``attn.gamma1`` layer scales, the MAE decoder as ``neck``, or a ``head`` /
    ``target_generator``. Plain layers with neither are MAEViT names already (a converted
    file) and are called mmseg.

    Raises:
        ConversionError: no known encoder structure, or marks of both mm layouts.
    """
    keys = list(state_dict)
    if any(_OFFICIAL_BLOCK.match(key) for key in keys):
        return 'official'
    if any(_TRANSFORMERS_BLOCK.match(key) for key in keys):
        return 'transformers'
    if not any(_MM_LAYER.match(key) for key in keys):
        raise ConversionError(
            'no ViT encoder found: neither blocks.<i>.* (official MAE / timm), '
            'encoder.layer.<i>.* (transformers) nor '
            f'layers.<i>.* (mmpretrain / mmseg) keys, only {summarize_keys(keys, max_items=4)}'
        )
    mmseg = any(_MMSEG_MARK.fullmatch(key) for key in keys)
    mmpretrain = any(_MMPRETRAIN_MARK.fullmatch(key) for key in keys)
    if mmseg and mmpretrain:
        raise ConversionError(
            'the checkpoint has marks of both the mmseg and the mmpretrain layout; '
            'name the layout (--layout)'
        )
    return 'mmpretrain' if mmpretrain else 'mmseg'
