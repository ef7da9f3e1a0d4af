"""Layer-wise learning-rate decay for ViT backbones, as in MAE's fine-tuning recipe."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

__all__ = ['MAELayerDecayOptimizerConstructor', 'layer_id', 'lr_scale', 'uses_weight_decay']

EMBEDDING_NAMES = ('backbone.cls_token', 'backbone.pos_embed', 'backbone.mask_token')
DEFAULT_NO_DECAY_NAMES = ('pos_embed', 'cls_token', 'mask_token', 'relative_position_bias_table')


def layer_id(name: str, num_layers: int) -> int:
    """Depth of a segmentor parameter for lr decay (facebookresearch/mae ``util/lr_decay.py``).

    Embeddings and the patch embedding are layer 0, ``backbone.layers.i.*`` is ``i + 1``,
    and everything else (final norm, neck, heads) is ``num_layers + 1``.
    """
    if name in EMBEDDING_NAMES or name.startswith('backbone.patch_embed.'):
        return 0
    if name.startswith('backbone.layers.'):
        return int(name.split('.')[2]) + 1
    return num_layers + 1


def lr_scale(layer: int, num_layers: int, decay_rate: float) -> float:
    """``decay_rate ** (num_layers + 1 - layer)``: 1 for the heads, smallest at the input."""
    return decay_rate ** (num_layers + 1 - layer)


def uses_weight_decay(name: str, param: nn.Parameter, no_decay_names: Iterable[str]) -> bool:
    """False for 1-D parameters, biases and the named position/token parameters."""
    if param.ndim <= 1 or name.endswith('.bias'):
        return False
    return name.rsplit('.', 1)[-1] not in set(no_decay_names)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MAELayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Parameter groups with layer-wise lr decay and MAE's weight-decay exclusions.

    Configured like mmseg's ``LayerDecayOptimizerConstructor``::

        optim_wrapper = dict(
            type='AmpOptimWrapper',
            optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
            constructor='MAELayerDecayOptimizerConstructor',
            paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.65))

    Differences from mmseg's: no weight decay on ``pos_embed``, ``cls_token`` and relative
    position bias tables (mmseg compares bare names against prefixed ones, so they decay);
    no check of the backbone's class name (any backbone with ``layers.<i>`` blocks works);
    one summary table in the log instead of a line per parameter.

    ``paramwise_cfg`` keys: ``num_layers`` (required), ``layer_decay_rate`` (or mmseg's
    ``decay_rate``), ``no_decay_names`` (last name components without weight decay,
    default ``pos_embed, cls_token, mask_token, relative_position_bias_table``) and
    ``decay_type`` (only ``'layer_wise'``, accepted for mmseg compatibility). mmengine's
    per-parameter keys (``custom_keys``, ``norm_decay_mult``, ...), which mmseg's
    constructor accepts and silently ignores, are an error naming the key.
    """

    _KNOWN_KEYS = {'num_layers', 'layer_decay_rate', 'decay_rate', 'no_decay_names', 'decay_type'}
    # DefaultOptimWrapperConstructor's keys; its add_params, which reads them, is replaced.
    _MMENGINE_KEYS = {
        'custom_keys',
        'bias_lr_mult',
        'bias_decay_mult',
        'norm_decay_mult',
        'dwconv_decay_mult',
        'flat_decay_mult',
        'bypass_duplicate',
    }

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        paramwise_cfg = dict(paramwise_cfg or {})
        ignored_by_mmseg = sorted(set(paramwise_cfg) & self._MMENGINE_KEYS)
        if ignored_by_mmseg:
            raise ValueError(
                f'MAELayerDecayOptimizerConstructor: paramwise_cfg.{ignored_by_mmseg[0]} is not '
                "applied by layer-wise lr decay (mmseg's LayerDecayOptimizerConstructor ignores "
                'it silently); remove it, and list parameters without weight decay in '
                'paramwise_cfg.no_decay_names'
            )
        unknown = set(paramwise_cfg) - self._KNOWN_KEYS
        if unknown:
            raise ValueError(
                f'MAELayerDecayOptimizerConstructor: unknown paramwise_cfg keys {sorted(unknown)}; '
                f'known: {sorted(self._KNOWN_KEYS)}'
            )
        if 'num_layers' not in paramwise_cfg:
            raise ValueError('MAELayerDecayOptimizerConstructor needs paramwise_cfg.num_layers')
        if paramwise_cfg.get('decay_type', 'layer_wise') not in ('layer_wise', 'layer_wise_vit'):
            raise ValueError(
                f"decay_type {paramwise_cfg['decay_type']!r} is not supported; use 'layer_wise'"
            )
        self.num_layers = int(paramwise_cfg['num_layers'])
        if 'layer_decay_rate' not in paramwise_cfg and 'decay_rate' not in paramwise_cfg:
            raise ValueError(
                'MAELayerDecayOptimizerConstructor needs paramwise_cfg.layer_decay_rate'
            )
        self.decay_rate = float(
            paramwise_cfg.get('layer_decay_rate', paramwise_cfg.get('decay_rate'))
        )
        self.no_decay_names: Sequence[str] = tuple(
            paramwise_cfg.get('no_decay_names', DEFAULT_NO_DECAY_NAMES)
        )
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def __call__(self, model: nn.Module):
        optim_wrapper = super().__call__(model)
        # mmengine builds the optimizer from a ConfigDict, which turns every param group
        # into a ConfigDict too; torch.compile (mmengine's compile=True compiles train_step,
        # the optimizer step included) cannot trace a dict subclass there. Plain dicts, as
        # torch makes them.
        optimizer = optim_wrapper.optimizer
        optimizer.param_groups[:] = [dict(group) for group in optimizer.param_groups]
        return optim_wrapper

    def add_params(self, params: list[dict], module: nn.Module, **kwargs) -> None:
        groups: dict[tuple, dict] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            layer = layer_id(name, self.num_layers)
            decay = uses_weight_decay(name, param, self.no_decay_names)
            group = groups.get((layer, decay))
            if group is None:
                scale = lr_scale(layer, self.num_layers, self.decay_rate)
                group = groups[(layer, decay)] = {
                    'params': [],
                    'lr': self.base_lr * scale,
                    'lr_scale': scale,
                    'weight_decay': self.base_wd if decay else 0.0,
                    'layer_id': layer,
                }
            group['params'].append(param)
        ordered = [groups[key] for key in sorted(groups, key=lambda k: (k[0], not k[1]))]
        params.extend(ordered)
        if get_dist_info()[0] == 0:
            print_log(self._format_groups(ordered), logger='current')

    def _format_groups(self, groups: list[dict]) -> str:
        lines = [
            f'Layer-wise lr decay: rate {self.decay_rate}, {self.num_layers} layers, '
            f'base lr {self.base_lr}, weight decay {self.base_wd}',
            f'{"layer":>5}  {"lr scale":>10}  {"weight decay":>12}  {"tensors":>7}  {"params":>11}',
        ]
        for group in groups:
            count = sum(p.numel() for p in group['params'])
            lines.append(
                f'{group["layer_id"]:>5}  {group["lr_scale"]:>10.4g}  '
                f'{group["weight_decay"]:>12.4g}  {len(group["params"]):>7}  {count:>11,}'
            )
        return '\n'.join(lines)
