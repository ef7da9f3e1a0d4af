"""DistributedDataParallel for processes that train on the CPU (gloo)."""

from __future__ import annotations

from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS
from torch import nn

__all__ = ['CPUDistributedDataParallel']


# mmengine's root registry: ``Runner.wrap_model`` looks the type up there without a scope.
@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper for modules on the CPU.

    Two differences from ``MMDistributedDataParallel``, both because the module is on the
    CPU: ``device_ids`` (mmengine's ``Runner`` always passes ``[LOCAL_RANK]``) is dropped, as
    PyTorch refuses it for CPU modules; and SyncBN layers, which have no CPU kernel, become
    BatchNorm with per-process statistics, as mmengine does for a single process.
    """

    def __init__(self, module: nn.Module, device_ids: list[int] | None = None, **kwargs) -> None:
        super().__init__(module=revert_sync_batchnorm(module), device_ids=None, **kwargs)
