"""Layer-wise learning-rate decay for ViT backbones, as in MAE's fine-tuning recipe."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

from ...errors import ConfigError

__all__ = [
    'MAELayerDecayOptimizerConstructor',
    'backbone_depth',
    'layer_id',
    'lr_scale',
    'num_layers_problem',
    'uses_weight_decay',
]

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


def _find_backbone(model: nn.Module) -> tuple[nn.Module, str]:
    """``model.backbone`` (through a DDP wrapper's ``.module``), or ``model`` as a bare
    backbone, and what its parameter names lack of a segmentor's (``''`` or ``'backbone.'``)."""
    model = getattr(model, 'module', model)
    backbone = getattr(model, 'backbone', None)
    if isinstance(backbone, nn.Module):
        return backbone, ''
    return model, 'backbone.'


def backbone_depth(model: nn.Module) -> int | None:
    """Transformer blocks of a segmentor's backbone, or of a bare backbone: ``len(layers)``.

    These are the blocks :func:`layer_id` numbers (``backbone.layers.<i>``), as in MAEViT and
    mmseg's ``MAE`` and ``BEiT`` (timm's ``param_groups_layer_decay`` likewise takes the depth
    from the model). A wrapper's ``.module`` (DDP) is looked through.

    Returns:
        the number of blocks, or None where there is no non-empty ``layers`` ModuleList (or
        Sequential) to count.
    """
    blocks = getattr(_find_backbone(model)[0], 'layers', None)
    if isinstance(blocks, (nn.ModuleList, nn.Sequential)) and len(blocks):
        return len(blocks)
    return None


def num_layers_problem(given: int | None, depth: int) -> str | None:
    """The one-line problem when ``paramwise_cfg.num_layers`` is given and is not the depth.

    Args:
        given: ``optim_wrapper.paramwise_cfg.num_layers``, None where the config leaves it out.
        depth: transformer blocks of the backbone (``model.backbone.num_layers``).
    """
    if given is None or given == depth:
        return None
    return (
        f'optim_wrapper.paramwise_cfg.num_layers={given} but the backbone has {depth} '
        f'transformer blocks (model.backbone.num_layers={depth}): '
        'MAELayerDecayOptimizerConstructor reads the depth from the model; delete '
        'paramwise_cfg.num_layers, or make it equal model.backbone.num_layers'
    )


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

    Configured like mmseg's ``LayerDecayOptimizerConstructor``, without the depth, which
    it reads from the model it is given (:func:`backbone_depth`)::

        optim_wrapper = dict(
            type='AmpOptimWrapper',
            optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
            constructor='MAELayerDecayOptimizerConstructor',
            paramwise_cfg=dict(layer_decay_rate=0.65))

    Differences from mmseg's: the depth comes from the model (``model.backbone.layers``);
    no weight decay on ``pos_embed``, ``cls_token`` and relative position bias tables
    (mmseg compares bare names against prefixed ones, so they decay); no check of the
    backbone's class name (any backbone with ``layers.<i>`` blocks works, in a segmentor or
    bare); one summary table in the log instead of a line per parameter.

    ``paramwise_cfg`` keys: ``layer_decay_rate`` (or mmseg's ``decay_rate``),
    ``num_layers`` (optional, for configs written for mmseg's constructor: it must equal the
    model's depth), ``no_decay_names`` (last name components without weight decay,
    default ``pos_embed, cls_token, mask_token, relative_position_bias_table``) and
    ``decay_type`` (only ``'layer_wise'``, accepted for mmseg compatibility). mmengine's
    per-parameter keys (``custom_keys``, ``norm_decay_mult``, ...), which mmseg's
    constructor accepts and silently ignores, are an error naming the key.

    Raises:
        ConfigError: from ``__init__`` for a key it does not apply or a missing decay rate;
            when called, for a model without ``backbone.layers`` blocks, or a
            ``paramwise_cfg.num_layers`` other than their count.
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
            raise ConfigError(
                f'MAELayerDecayOptimizerConstructor: paramwise_cfg.{ignored_by_mmseg[0]} is not '
                "applied by layer-wise lr decay (mmseg's LayerDecayOptimizerConstructor ignores "
                'it silently); remove it, and list parameters without weight decay in '
                'paramwise_cfg.no_decay_names'
            )
        unknown = set(paramwise_cfg) - self._KNOWN_KEYS
        if unknown:
            raise ConfigError(
                f'MAELayerDecayOptimizerConstructor: unknown paramwise_cfg keys {sorted(unknown)}; '
                f'known: {sorted(self._KNOWN_KEYS)}'
            )
        if paramwise_cfg.get('decay_type', 'layer_wise') not in ('layer_wise', 'layer_wise_vit'):
            raise ConfigError(
                f"decay_type {paramwise_cfg['decay_type']!r} is not supported; use 'layer_wise'"
            )
        given = paramwise_cfg.get('num_layers')
        self.given_num_layers = None if given is None else int(given)
        if 'layer_decay_rate' not in paramwise_cfg and 'decay_rate' not in paramwise_cfg:
            raise ConfigError(
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

    def model_depth(self, model: nn.Module) -> int:
        """The depth of ``model`` (:func:`backbone_depth`), checked against the config's.

        Raises:
            ConfigError: ``model`` has no ``backbone.layers`` blocks, or
                ``paramwise_cfg.num_layers`` is given and is not their count.
        """
        depth = backbone_depth(model)
        if depth is None:
            backbone = _find_backbone(model)[0]
            raise ConfigError(
                'MAELayerDecayOptimizerConstructor: found no transformer blocks to decay in '
                f'{type(model).__name__}: it looks for a non-empty ModuleList '
                f'model.backbone.layers (or layers of a bare backbone), and '
                f'{type(backbone).__name__} has none; layer-wise lr decay serves ViT backbones '
                "such as MAEViT and mmseg's MAE and BEiT"
            )
        problem = num_layers_problem(self.given_num_layers, depth)
        if problem:
            raise ConfigError(f'MAELayerDecayOptimizerConstructor: {problem}')
        return depth

    def add_params(self, params: list[dict], module: nn.Module, **kwargs) -> None:
        # ``module`` is unwrapped from DDP by mmengine's ``__call__``.
        num_layers = self.model_depth(module)
        # A bare backbone's parameters are named as a segmentor's would be.
        prefix = _find_backbone(module)[1]
        groups: dict[tuple, dict] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            layer = layer_id(prefix + name, num_layers)
            decay = uses_weight_decay(name, param, self.no_decay_names)
            group = groups.get((layer, decay))
            if group is None:
                scale = lr_scale(layer, num_layers, self.decay_rate)
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
            print_log(self._format_groups(ordered, num_layers), logger='current')

    def _format_groups(self, groups: list[dict], num_layers: int) -> str:
        lines = [
            f'Layer-wise lr decay: rate {self.decay_rate}, {num_layers} layers, '
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
