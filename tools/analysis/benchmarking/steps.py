"""One step of each measured kind: inference, a training step, and the GEMM reference."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from mae_seg.models import MAEViT
from mae_seg.models.layers.sdpa import use_attention_path

from .cases import VARIANT_ATTENTION_PATHS, Case

__all__ = [
    'GemmStep',
    'amp_dtype',
    'autocast',
    'inference_step',
    'make_optimizer',
    'training_step',
    'vit_linear_shapes',
]


def amp_dtype(device: str) -> torch.dtype:
    """Mixed precision: bf16 on the CPU (its fast low-precision GEMMs), fp16 on CUDA."""
    return torch.bfloat16 if device == 'cpu' else torch.float16


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager:
    if precision == 'fp32':
        return contextlib.nullcontext()
    return torch.autocast(device, dtype=amp_dtype(device))


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """AdamW with the fine-tuning recipe's settings (the values do not change the cost)."""
    return torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)


def inference_step(
    workload,
    model: nn.Module,
    case: Case,
    variant: str | None = None,
    outputs: dict | None = None,
) -> Callable[[], None]:
    """A forward pass without autograd, in ``case.precision``.

    Args:
        workload: gives the inputs and runs the model.
        model: the model.
        case: batch and precision.
        variant: a name of :data:`VARIANT_ATTENTION_PATHS` runs on its attention path.
        outputs: where to keep the outputs, under ``variant``.
    """
    inputs = workload.inputs(case.batch)
    device = workload.spec.device
    path = VARIANT_ATTENTION_PATHS.get(variant)
    on_path = (lambda: use_attention_path(path)) if path else contextlib.nullcontext

    def step() -> None:
        model.eval()
        with torch.no_grad(), autocast(device, case.precision), on_path():
            result = workload.infer(model, inputs)
        if outputs is not None:
            outputs[variant] = result

    return step


def training_step(
    workload,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    case: Case,
    with_cp: bool = False,
) -> Callable[[], None]:
    """Forward, backward and an optimizer step (with a grad scaler for CUDA fp16).

    Gradients are dropped after the step, so a model waiting for its turn holds none.
    """
    inputs = workload.inputs(case.batch)
    device = workload.spec.device
    backbone = workload.backbone(model)
    # A compiled model wraps the module whose with_cp is switched.
    backbone = getattr(backbone, '_orig_mod', backbone)
    use_scaler = device == 'cuda' and case.precision == 'amp'
    scaler = torch.amp.GradScaler('cuda') if use_scaler else None

    def step() -> None:
        if isinstance(backbone, MAEViT):
            backbone.with_cp = with_cp
        model.train()
        with autocast(device, case.precision):
            loss = workload.loss(model, inputs)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        optimizer.zero_grad(set_to_none=True)

    return step


def vit_linear_shapes(embed_dims: int, hidden_dims: int) -> list[tuple[int, int]]:
    """``(in, out)`` of a ViT block's linear layers: qkv, attention output, FFN in and out."""
    return [
        (embed_dims, 3 * embed_dims),
        (embed_dims, embed_dims),
        (embed_dims, hidden_dims),
        (hidden_dims, embed_dims),
    ]


class GemmStep:
    """The matrix products of a ViT's linear layers alone, as the machine's reference rate.

    Inference runs ``F.linear`` on ``(tokens, in)`` for each shape; training adds the two
    products of its backward (input and weight gradients), as a training step does. All of
    it ``repeats`` times (once per block), so that it does the model's linear-layer work.

    Args:
        shapes: ``(in, out)`` pairs, see :func:`vit_linear_shapes`.
        tokens: rows of the activations (batch times tokens per image).
        task: ``'infer'`` or ``'train'``.
        dtype: dtype of the operands.
        device: where to run.
        repeats: times the products run per call.
    """

    def __init__(
        self,
        shapes: list[tuple[int, int]],
        tokens: int,
        task: str,
        dtype: torch.dtype,
        device: str,
        repeats: int = 1,
    ) -> None:
        generator = torch.Generator().manual_seed(0)

        def rand(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=generator).to(device=device, dtype=dtype)

        self.operands = [
            (rand(tokens, c_in), rand(c_out, c_in), rand(c_out), rand(tokens, c_out))
            for c_in, c_out in shapes
        ]
        self.train = task == 'train'
        self.repeats = repeats
        products = 3 if self.train else 1
        self.flops = repeats * sum(2 * tokens * c_in * c_out * products for c_in, c_out in shapes)

    def __call__(self) -> None:
        for _ in range(self.repeats):
            for x, weight, bias, grad_y in self.operands:
                F.linear(x, weight, bias)
                if self.train:
                    torch.mm(grad_y, weight)
                    torch.mm(grad_y.t(), x)
