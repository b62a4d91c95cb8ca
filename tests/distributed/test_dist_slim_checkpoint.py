"""A slim checkpoint (runs/frozen.py) under FSDP2, 2 processes on gloo: the full state gathered
to rank 0 and filtered there holds the trained tensors alone, and loading it into a fresh
sharded network (its frozen part as built) with load_full_state(strict=False) gives back the
trained network on every rank."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import save_file
from torch import nn

from difflab.parallel.distributed import shutdown
from difflab.parallel.sharding import full_model_state, load_full_state, shard
from difflab.runs.frozen import declare_frozen, slim_state

CPU = torch.device("cpu")


def _network(folder: Path, seed: int) -> nn.Module:
    """Linear 4 -> 4 (frozen, from folder/base.safetensors's seed-0 weights), then 4 -> 2."""
    torch.manual_seed(0)
    base = nn.Linear(4, 4).requires_grad_(False)
    torch.manual_seed(seed)
    net = declare_frozen(nn.Sequential(base, nn.Linear(4, 2)), folder, ("base.safetensors",))
    return shard(net, CPU)


def _worker(rank: int, folder: str, store: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    trained = _network(Path(folder), seed=1)
    with torch.no_grad():
        for p in trained[1].parameters():
            p.add_(1.0)
    full = full_model_state(trained)
    kept = sorted(slim_state(trained, full)[0]) if rank == 0 else []
    slim = {k: v for k, v in full.items() if k in kept}
    received = [slim]
    dist.broadcast_object_list(received, src=0)  # every rank reads the checkpoint
    fresh = _network(Path(folder), seed=2)
    load_full_state(fresh, received[0], strict=False)
    loaded = full_model_state(fresh)
    if rank == 0:
        equal = all(torch.equal(v, full[k]) for k, v in loaded.items())
        Path(folder, "result.json").write_text(json.dumps({"kept": kept, "equal": equal}))
    shutdown()


def test_a_slim_state_gathers_and_loads_under_fsdp(tmp_path):
    torch.manual_seed(0)
    save_file(nn.Linear(4, 4).state_dict(), tmp_path / "base.safetensors")
    mp.spawn(_worker, args=(str(tmp_path), str(tmp_path / "store")), nprocs=2)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result == {"kept": ["1.bias", "1.weight"], "equal": True}
