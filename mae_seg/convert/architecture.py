"""The ViT architecture a MAEViT state dict describes, checked tensor by tensor."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ..errors import ConversionError
from ..io.summary import summarize_keys
from ..models import MAEViT
from ..models.layers.positions import rel_pos_grid_from_table_size

__all__ = ['EncoderArchitecture', 'infer_architecture', 'resolve_num_heads']

_LAYER = re.compile(r'layers\.(\d+)\.')
# Head counts of the released MAE encoders, by width; other widths get width // 64.
_MAE_HEADS = {768: (12, 'MAE ViT-B'), 1024: (16, 'MAE ViT-L'), 1280: (16, 'MAE ViT-H')}


@dataclass(frozen=True)
class EncoderArchitecture:
    """What the tensors of an encoder fix (the head count is not among them).

    Attributes:
        embed_dims: token channels ``C``.
        num_layers: transformer blocks.
        mlp_ratio: FFN hidden channels over ``C``.
        patch_size: side of the square patches.
        in_channels: image channels.
        grid: side of the square patch grid of ``pos_embed``.
        final_norm: the final norm ``ln1`` is present.
        layer_scale: every block has ``gamma_1`` / ``gamma_2``.
        rel_pos_table: ``(rows, heads)`` of the relative position bias tables, if present.
    """

    embed_dims: int
    num_layers: int
    mlp_ratio: int
    patch_size: int
    in_channels: int
    grid: int
    final_norm: bool
    layer_scale: bool
    rel_pos_table: tuple[int, int] | None

    @property
    def img_size(self) -> int:
        """Image side the position embedding was trained for."""
        return self.grid * self.patch_size

    def mae_vit_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name and shape of every tensor of the MAEViT that :meth:`mae_vit_kwargs` builds.

        Read from a MAEViT built on the ``meta`` device (no memory, no initialisation), so
        the converter's names cannot drift from the model's.
        """
        heads = self.rel_pos_table[1] if self.rel_pos_table is not None else 1
        with torch.device('meta'):
            model = MAEViT(**self.mae_vit_kwargs(heads))
        return {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor name of a checkpoint of this architecture, with its shape.

        MAEViT's (:meth:`mae_vit_shapes`) less layer scales and bias tables when the
        checkpoint has none; a table keeps its own rows, as MAEViT resizes a table of
        another grid when loading it.
        """
        shapes = {}
        for key, shape in self.mae_vit_shapes().items():
            name = key.rsplit('.', 1)[-1]
            if name in ('gamma_1', 'gamma_2') and not self.layer_scale:
                continue
            if name == 'relative_position_bias_table':
                if self.rel_pos_table is None:
                    continue
                shape = self.rel_pos_table
            shapes[key] = shape
        return shapes

    def keys_left_to_mae_vit(self) -> list[str]:
        """MAEViT parameters the checkpoint lacks, which keep MAEViT's initial values."""
        expected = self.expected_shapes()
        return [key for key in self.mae_vit_shapes() if key not in expected]

    def mae_vit_kwargs(self, num_heads: int, norm_eps: float = 1e-6) -> dict:
        """MAEViT arguments that rebuild this encoder as it was pretrained.

        Args:
            num_heads: attention heads (the weights fix them only with bias tables).
            norm_eps: LayerNorm epsilon; MAE's own is 1e-6, transformers' configs say theirs.
        """
        return dict(
            img_size=self.img_size,
            patch_size=self.patch_size,
            in_channels=self.in_channels,
            embed_dims=self.embed_dims,
            num_layers=self.num_layers,
            num_heads=num_heads,
            mlp_ratio=self.mlp_ratio,
            norm_cfg=dict(type='LN', eps=norm_eps),
            final_norm=self.final_norm,
        )


def _shape(state_dict: Mapping[str, torch.Tensor], key: str, ndim: int) -> tuple[int, ...]:
    if key not in state_dict:
        raise ConversionError(f'the encoder has no {key}')
    shape = tuple(state_dict[key].shape)
    if len(shape) != ndim:
        raise ConversionError(f'{key} has shape {shape}; expected {ndim} dimensions')
    return shape


def infer_architecture(state_dict: Mapping[str, torch.Tensor]) -> EncoderArchitecture:
    """Read the architecture from a MAEViT-named state dict and check every tensor against it.

    Raises:
        ConversionError: a tensor is missing, extra, not floating point or of the wrong
            shape, the layers are not numbered ``0..L-1``, ``pos_embed`` is not a class
            token plus a square grid, or the FFN width is not a multiple of ``C``.
    """
    dims = _shape(state_dict, 'cls_token', 3)[-1]
    _, in_channels, patch, patch_w = _shape(state_dict, 'patch_embed.projection.weight', 4)
    if patch != patch_w:
        raise ConversionError(f'patches of {patch}x{patch_w} pixels are not square')
    layer_ids = {int(match[1]) for key in state_dict if (match := _LAYER.match(key))}
    if not layer_ids:
        raise ConversionError('the encoder has no transformer layers')
    hidden = _shape(state_dict, 'layers.0.ffn.layers.0.0.weight', 2)[0]
    if hidden % dims:
        raise ConversionError(
            f'FFN width {hidden} is not a multiple of the {dims} channels; MAEViT needs an '
            'integer mlp_ratio'
        )
    positions = _shape(state_dict, 'pos_embed', 3)[1]
    grid = math.isqrt(max(positions - 1, 0))
    if grid == 0 or grid * grid != positions - 1:
        raise ConversionError(
            f'pos_embed holds {positions} positions, not one class-token position plus a '
            'square grid'
        )
    table_key = 'layers.0.attn.relative_position_bias_table'
    rel_pos_table = _shape(state_dict, table_key, 2) if table_key in state_dict else None
    if rel_pos_table is not None:
        try:
            rel_pos_grid_from_table_size(rel_pos_table[0])
        except ValueError as error:
            raise ConversionError(f'{table_key}: {error}') from error
    architecture = EncoderArchitecture(
        embed_dims=dims,
        num_layers=max(layer_ids) + 1,
        mlp_ratio=hidden // dims,
        patch_size=patch,
        in_channels=in_channels,
        grid=grid,
        final_norm='ln1.weight' in state_dict,
        layer_scale='layers.0.gamma_1' in state_dict,
        rel_pos_table=rel_pos_table,
    )
    _check_tensors(state_dict, architecture.expected_shapes())
    return architecture


def _check_tensors(
    state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]]
) -> None:
    missing = [key for key in expected if key not in state_dict]
    if missing:
        raise ConversionError(
            f'the encoder is incomplete; missing {len(missing)} tensors: '
            f'{summarize_keys(missing, max_items=4)}'
        )
    extra = [key for key in state_dict if key not in expected]
    if extra:
        raise ConversionError(
            f'tensors that do not fit the rest of the encoder: {summarize_keys(extra, max_items=4)}'
        )
    for key, shape in expected.items():
        tensor = state_dict[key]
        if tuple(tensor.shape) != shape:
            raise ConversionError(f'{key} has shape {tuple(tensor.shape)}; expected {shape}')
        if not tensor.is_floating_point():
            raise ConversionError(f'{key} holds {tensor.dtype} values; expected floating point')


def resolve_num_heads(
    architecture: EncoderArchitecture,
    requested: int | None = None,
    config_heads: int | None = None,
) -> tuple[int, str]:
    """The attention head count and where it comes from.

    The relative position bias tables fix it; else a transformers ``config.json`` states
    it; else ``requested``; else the released MAE value for the width.

    Args:
        architecture: what the tensors fix.
        requested: ``--num-heads``, if given.
        config_heads: ``num_attention_heads`` of the source's ``config.json``, if any.

    Returns:
        ``(num_heads, origin)``; ``origin`` says how it was chosen, for the user.

    Raises:
        ConversionError: ``requested`` contradicts the tables or the config, or the count
            does not divide ``C``.
    """
    dims = architecture.embed_dims
    if architecture.rel_pos_table is not None:
        heads = architecture.rel_pos_table[1]
        if requested is not None and requested != heads:
            raise ConversionError(
                f'--num-heads {requested} contradicts the relative position bias tables, which '
                f'have {heads} heads'
            )
        origin = 'from the relative position bias tables'
    elif config_heads is not None:
        heads = config_heads
        if requested is not None and requested != heads:
            raise ConversionError(
                f'--num-heads {requested} contradicts config.json, which has '
                f'num_attention_heads {heads}'
            )
        origin = 'from config.json'
    elif requested is not None:
        heads, origin = requested, 'as given'
    elif dims in _MAE_HEADS:
        heads, name = _MAE_HEADS[dims]
        origin = f'not stored in the weights: the {name} value; give --num-heads if it differs'
    else:
        heads = max(dims // 64, 1)
        origin = 'not stored in the weights: width // 64; give --num-heads if it differs'
    if heads < 1 or dims % heads:
        raise ConversionError(f'{heads} heads do not divide the {dims} channels; fix --num-heads')
    return heads, origin
