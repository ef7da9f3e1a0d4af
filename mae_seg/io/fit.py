"""Whether a checkpoint's tensors fit a model: the one rule every weight load goes by.

mmengine's ``load_checkpoint`` and ``PretrainedInit`` and torch's ``strict=False`` load
what matches and log the rest, so a checkpoint made for 150 classes tested with a
3-class config reports the metrics of a randomly initialised classifier. Every load in
mae_seg (``load_from``, ``--resume``, ``Pretrained`` inits, ``infer.py``) asks
:func:`check_state_dict_fits` first and refuses a checkpoint that does not fit, naming
the keys.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from ..errors import CheckpointMismatchError
from .summary import summarize_keys

__all__ = ['KeyMismatch', 'check_state_dict_fits', 'key_mismatch', 'load_excuses', 'matching_keys']


def matching_keys(keys: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """The keys named by ``patterns``: a module prefix (``decode_head.conv_seg`` names
    ``decode_head.conv_seg.weight`` and ``.bias``) or an ``fnmatch`` pattern
    (``layers.*.gamma_1``)."""
    return [
        key
        for key in keys
        if any(fnmatch.fnmatchcase(key, p) or fnmatch.fnmatchcase(key, f'{p}.*') for p in patterns)
    ]


@dataclass
class KeyMismatch:
    """How a state dict differs from what a model expects.

    Attributes:
        missing: model keys the checkpoint lacks.
        unexpected: checkpoint keys the model does not have.
        mismatched: ``(key, checkpoint shape, model shape)`` of keys in both.
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        """One line: each kind summarised (``layers.{0-11}.gamma_1``), at most a few each."""
        problems = []
        if self.missing:
            problems.append(f'missing {summarize_keys(self.missing, max_items=3)}')
        if self.unexpected:
            problems.append(f'unexpected {summarize_keys(self.unexpected, max_items=3)}')
        if self.mismatched:
            shown = [f'{k} {tuple(a)} vs {tuple(b)}' for k, a, b in self.mismatched[:2]]
            more = f' and {len(self.mismatched) - 2} more' if len(self.mismatched) > 2 else ''
            problems.append(f'shapes (checkpoint vs model) {"; ".join(shown)}{more}')
        return '; '.join(problems)


def key_mismatch(
    state_dict: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor | torch.Size],
    may_be_missing: Sequence[str] = (),
    may_be_unexpected: Sequence[str] = (),
    resized: Sequence[str] = (),
) -> KeyMismatch:
    """Compare ``state_dict`` with ``expected`` (a model's state dict, or its shapes).

    Args:
        state_dict: the checkpoint's tensors, names as the model's.
        expected: the model's tensors (meta tensors do) or shapes.
        may_be_missing: patterns (see :func:`matching_keys`) of model keys the checkpoint
            need not hold: parts the model initialises itself.
        may_be_unexpected: patterns of checkpoint keys the model does not need.
        resized: patterns of keys whose shape the loader fits to the model.
    """
    shapes = {k: tuple(v.shape if isinstance(v, torch.Tensor) else v) for k, v in expected.items()}
    missing = [k for k in shapes if k not in state_dict]
    unexpected = [k for k in state_dict if k not in shapes]
    excused_missing = set(matching_keys(missing, may_be_missing))
    excused_unexpected = set(matching_keys(unexpected, may_be_unexpected))
    both = [k for k in shapes if k in state_dict]
    resizable = set(matching_keys(both, resized))
    return KeyMismatch(
        missing=[k for k in missing if k not in excused_missing],
        unexpected=[k for k in unexpected if k not in excused_unexpected],
        mismatched=[
            (k, tuple(state_dict[k].shape), shapes[k])
            for k in both
            if k not in resizable and tuple(state_dict[k].shape) != shapes[k]
        ],
    )


def check_state_dict_fits(
    state_dict: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor | torch.Size],
    source: str,
    fix: str | Callable[[KeyMismatch], str] = '',
    target: str = 'the model',
    **excused: Sequence[str],
) -> None:
    """Raise unless ``state_dict`` holds every tensor ``expected`` needs, in its shape.

    Args:
        state_dict: the checkpoint's tensors.
        expected: the model's state dict (meta tensors do) or shapes.
        source: what is loaded, for the message (``checkpoint work_dirs/iter_400.pth``).
        fix: what the user can do, appended to the message; or a function of the
            mismatch that says it.
        target: what it is loaded into, for the message.
        **excused: ``may_be_missing``, ``may_be_unexpected``, ``resized`` of
            :func:`key_mismatch`.

    Raises:
        CheckpointMismatchError: one line naming the missing, unexpected and mismatched
            keys, and the fix.
    """
    mismatch = key_mismatch(state_dict, expected, **excused)
    if mismatch:
        message = f'{source} does not fit {target}: {mismatch}'
        fix = fix(mismatch) if callable(fix) else fix
        raise CheckpointMismatchError(f'{message}; {fix}' if fix else message)


def load_excuses(model: torch.nn.Module) -> dict[str, list[str]]:
    """What the submodules of ``model`` fit or drop themselves when a state dict is loaded.

    A module declares it in ``LOAD_RESIZES`` (keys loaded in any shape and fitted, such as
    MAEViT's position tensors) and ``LOAD_IGNORES`` (checkpoint keys it drops, such as
    mmseg's ``relative_position_index`` buffers); the patterns come back prefixed with the
    module's name, as the ``resized`` and ``may_be_unexpected`` of :func:`key_mismatch`.
    """
    resized: list[str] = []
    ignored: list[str] = []
    for name, module in model.named_modules():
        prefix = f'{name}.' if name else ''
        resized += [prefix + p for p in getattr(module, 'LOAD_RESIZES', ())]
        ignored += [prefix + p for p in getattr(module, 'LOAD_IGNORES', ())]
    return dict(resized=resized, may_be_unexpected=ignored)
