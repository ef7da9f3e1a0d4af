"""Peak memory of one step of one model, measured in a fresh child process.

Within one long-lived process the high-water mark of the resident set only grows and
freed memory stays with the allocator, so each (case, model) runs alone in a child
(``python -m benchmarking.memory``, the request as JSON on stdin, the answer as JSON
on stdout). On the CPU the answer is the child's peak resident set (``VmHWM``) and its
resident set after imports, before the model is built (the interpreter and libraries),
and the growth of the resident set during the step alone (the peak is reset just before
it); on CUDA ``torch.cuda.max_memory_allocated``. The peak covers the weights, the optimizer
state (created before the step, so that the step is a steady-state one) and the
activations. Memory does not depend on the weights' values, so the child keeps its own.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from .cases import Case
from .steps import inference_step, make_optimizer, training_step
from .workloads import WorkloadSpec, build_workload

__all__ = ['peak_memory']


def peak_memory(
    spec: WorkloadSpec, case: Case, variant: str, threads: int, backend: str | None = None
) -> dict[str, float]:
    """Peak memory in MiB of one ``case`` step of ``variant``, in a child process.

    Args:
        spec: the workload.
        case: the step to run.
        variant: ``'mmseg'``, ``'ours'``, ``'ours_cp'`` or ``'ours_compiled'``.
        threads: ``torch.set_num_threads`` of the child.
        backend: ``torch.compile`` backend of ``'ours_compiled'``.

    Returns:
        ``peak_mb``: the peak; ``base_mb``: the resident set before the model was built
        (0 on CUDA); ``net_mb``: their difference, the memory model and step need;
        ``step_mb``: the peak less the memory held just before the step (model, inputs,
        optimizer state), what the step's own tensors and caches take.

    Raises:
        RuntimeError: the child failed; the message holds its stderr.
    """
    request = dict(
        spec=dataclasses.asdict(spec),
        case=dataclasses.asdict(case),
        variant=variant,
        threads=threads,
        backend=backend,
    )
    # The package lives beside tools/analysis/benchmark.py, not in site-packages.
    tools_dir = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(filter(None, [tools_dir, os.environ.get('PYTHONPATH')]))
    child = subprocess.run(
        [sys.executable, '-m', __name__],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env={**os.environ, 'PYTHONPATH': path},
    )
    if child.returncode != 0:
        raise RuntimeError(f'peak memory of {variant}, {case.name} failed:\n{child.stderr}')
    return json.loads(child.stdout.strip().splitlines()[-1])


def _rss_mb(field: str) -> float:
    """``VmHWM`` (peak) or ``VmRSS`` (current) resident set of this process, in MiB.

    Not ``ru_maxrss``: on Linux a child started by fork and exec reports the parent's
    resident set at the fork as its own peak. ``VmHWM`` is the child's own address space.
    """
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith(field + ':'):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f'/proc/self/status has no {field}')


def _reset_peak_rss() -> bool:
    """Restart ``VmHWM`` at the current resident set (Linux ``clear_refs``); False where
    the kernel refuses."""
    try:
        with open('/proc/self/clear_refs', 'w') as clear_refs:
            clear_refs.write('5')
    except OSError:
        return False
    return True


def _init_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Create the optimizer's state now, as a step after the first one would find it."""
    for param in model.parameters():
        param.grad = torch.zeros_like(param)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _measure(request: dict) -> dict[str, float]:
    fields = request['spec']
    input_size = fields.get('input_size')
    spec = WorkloadSpec(
        **{
            **fields,
            'image_size': tuple(fields['image_size']),
            'input_size': tuple(input_size) if input_size else None,
        }
    )
    case, variant = Case(**request['case']), request['variant']
    torch.set_num_threads(request['threads'])
    on_cuda = spec.device == 'cuda'
    base_mb = 0.0 if on_cuda else _rss_mb('VmRSS')
    workload = build_workload(spec)
    model = workload.build(variant)
    compiled = variant == 'ours_compiled'
    runner = torch.compile(model, backend=request['backend']) if compiled else model
    if case.task == 'infer':
        step = inference_step(workload, runner, case, variant)
    else:
        optimizer = make_optimizer(model)
        _init_optimizer_state(model, optimizer)
        step = training_step(workload, runner, optimizer, case, with_cp=variant == 'ours_cp')
    if compiled and on_cuda:
        step()  # compiles; the peak that counts is that of a compiled step
        torch.cuda.reset_peak_memory_stats()
    if on_cuda:
        before_mb = torch.cuda.memory_allocated() / 2**20
    else:
        before_mb = _rss_mb('VmRSS')
        # Without the reset the peak could be a transient of building the model.
        if not _reset_peak_rss():
            before_mb = float('nan')
    step()
    if on_cuda:
        torch.cuda.synchronize()
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = _rss_mb('VmHWM')
    return dict(
        peak_mb=peak_mb, base_mb=base_mb, net_mb=peak_mb - base_mb, step_mb=peak_mb - before_mb
    )


if __name__ == '__main__':
    print(json.dumps(_measure(json.loads(sys.stdin.read()))))
