"""Rank helpers with one code path: rank 0 of world size 1 when there is no process group.

Under torchrun (WORLD_SIZE > 1) `setup_device` joins the process group (NCCL on CUDA, gloo
on CPU); every other helper is a no-op without one.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from difflab.core.errors import ConfigError


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def resolve_device(name: str) -> torch.device:
    """auto: CUDA when available, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is available")
    return torch.device(name)


def setup_device(name: str) -> torch.device:
    """This process's device, joining torchrun's process group first when there is one."""
    device = resolve_device(name)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not is_distributed():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda" and is_distributed():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


def all_reduce_sum(x: Tensor) -> Tensor:
    """Sum of x over ranks (in place); x itself without a process group."""
    if is_distributed():
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


_HOST_GROUPS: dict[Any, Any] = {}  # the default group -> its gloo twin (None: itself)


def any_rank(flag: bool) -> bool:
    """Whether flag is true on any rank, agreed on the host: a CPU all-reduce over gloo (the
    default group when it is gloo, else a gloo group made on first use by every rank at the
    same call), so unlike a CUDA all-reduce it does not wait for the GPU's queue."""
    if not is_distributed():
        return flag
    world = dist.group.WORLD
    if world not in _HOST_GROUPS:
        gloo = dist.get_backend() == "gloo"
        _HOST_GROUPS[world] = None if gloo else dist.new_group(backend="gloo")
    x = torch.tensor([float(flag)])
    dist.all_reduce(x, op=dist.ReduceOp.SUM, group=_HOST_GROUPS[world])
    return bool(x.item() > 0)


def broadcast_from_main(obj: Any) -> Any:
    """Rank 0's value of obj on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown(finished: bool = False) -> None:
    """Leave the process group, if any (at the end of a torchrun command). finished: every
    rank got here normally, so wait for all of them first (without it, one 2-process FSDP run
    on gloo in five aborted at exit: "terminate called without an active exception"; none in
    six with it). Not after an error, where the other ranks may never arrive."""
    if finished:
        barrier()
    if is_distributed():
        dist.destroy_process_group()  # and the host group with it
    _HOST_GROUPS.clear()


def shard_rows(num: int) -> range:
    """This rank's rows of 0..num-1 when num items are split over the ranks: ceil(num / world)
    consecutive rows each, so every rank runs the same number of forward passes (which sharded
    weights need); the last ranks' rows may run past num - 1 (padding, dropped on gathering)."""
    per = -(-num // world_size())
    return range(rank() * per, (rank() + 1) * per)


def gather_rows(x: Tensor, num: int) -> Tensor | None:
    """On rank 0, every rank's x (its shard_rows(num)) concatenated in rank order and cut to num
    rows, on the CPU; None on other ranks. x itself (cut) without a process group."""
    if not is_distributed():
        return x[:num].cpu()
    parts: list[Any] | None = [None] * world_size() if is_main() else None
    dist.gather_object(x.cpu(), parts, dst=0)
    return torch.cat(parts)[:num] if parts is not None else None
