"""Data parallelism for training: DDP (replicated weights) or FSDP2 (sharded weights), and the
full, single-file state dicts that checkpoints hold in either case.

`train.parallel: fsdp` shards every innermost block of a network's repeated stacks (UNet
blocks, DiT blocks) and then the root with torch.distributed.fsdp.fully_shard; parameters
become DTensors holding 1/world of each weight.
Saving gathers the full weights and optimizer state to rank 0 on the CPU
(torch.distributed.checkpoint.state_dict with full_state_dict=True), so a checkpoint is the
same file whatever the world size or parallel mode, and loading scatters it back.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Any, Literal

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel

from difflab.parallel.distributed import is_distributed, world_size

Parallel = Literal["ddp", "fsdp"]

_GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True)
_SCATTER = StateDictOptions(full_state_dict=True)


def shard(model: nn.Module, device: torch.device) -> nn.Module:
    """model sharded in place over all ranks with FSDP2: each innermost repeated block (see
    repeated_blocks), then the root, which keeps the remaining weights."""
    mesh = init_device_mesh(device.type, (world_size(),))
    for block in repeated_blocks(model):
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def repeated_blocks(model: nn.Module) -> list[nn.Module]:
    """The trainable entries of model's nn.ModuleLists that hold no ModuleList themselves (UNet
    blocks, DiT blocks). Containers such as a UNet level are left out: the network calls their
    parts, never their forward, and FSDP2 gathers a unit's weights in its forward."""
    return [
        block
        for stack in model.modules()
        if isinstance(stack, nn.ModuleList)
        for block in stack
        if not any(isinstance(m, nn.ModuleList) for m in block.modules())
        and any(p.requires_grad for p in block.parameters())
    ]


def is_sharded(model: nn.Module) -> bool:
    return isinstance(model, FSDPModule)


def data_parallel(model: nn.Module, device: torch.device, parallel: Parallel) -> nn.Module:
    """The module the loss calls: DDP around model, or model itself (sharded, or one process)."""
    if not is_distributed() or parallel == "fsdp":
        return model
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


@contextmanager
def gradient_sync(forward: nn.Module, model: nn.Module, enabled: bool):
    """Backward passes inside reduce gradients across ranks only when enabled: off on the
    non-final micro-steps of gradient accumulation (DDP no_sync, FSDP2
    set_requires_gradient_sync), so each optimizer step reduces once."""
    ddp = getattr(forward, "_orig_mod", forward)  # under torch.compile
    if isinstance(ddp, DistributedDataParallel):
        with nullcontext() if enabled else ddp.no_sync():
            yield
    elif isinstance(model, FSDPModule):
        model.set_requires_gradient_sync(enabled)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        yield


def local(x: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a DTensor (a view); x itself otherwise."""
    return x.to_local() if isinstance(x, DTensor) else x


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Full CPU weights on rank 0 (collective: every rank calls it); {} on other ranks when
    sharded."""
    return get_model_state_dict(model, options=_GATHER)


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Full CPU optimizer state keyed by parameter name, on rank 0 (collective)."""
    return get_optimizer_state_dict(model, optimizer, options=_GATHER)


def load_full_state(
    model: nn.Module,
    weights: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer | None = None,
    optimizer_state: dict[str, Any] | None = None,
    strict: bool = True,
) -> None:
    """Load full weights (and optimizer state), read by every rank, into a model that may be
    sharded: each rank keeps its shard. strict=False: weights may lack some of the model's
    tensors (a slim checkpoint's frozen part), which keep their values."""
    options = _SCATTER if strict else StateDictOptions(full_state_dict=True, strict=False)
    set_model_state_dict(model, weights, options=options)
    if optimizer is not None and optimizer_state is not None:
        set_optimizer_state_dict(model, optimizer, optimizer_state, options=_SCATTER)
