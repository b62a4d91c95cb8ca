"""any_rank: the host-side agreement on stopping (a signal on one rank stops every rank)."""

from __future__ import annotations

import json
from pathlib import Path

import torch.distributed as dist
import torch.multiprocessing as mp

from difflab.parallel.distributed import any_rank, shutdown


def _worker(rank: int, store_path: str, out: str, gloo_twin: bool) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=2)
    if gloo_twin:  # as under NCCL: the flag goes through a separate gloo group
        dist.get_backend = lambda group=None: "nccl"
    results = [any_rank(rank == 1), any_rank(False), any_rank(True)]
    shutdown()
    Path(out, f"rank{rank}.json").write_text(json.dumps(results))


def _run(tmp_path: Path, gloo_twin: bool) -> list[list[bool]]:
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(tmp_path), gloo_twin), nprocs=2)
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]


def test_a_flag_on_one_rank_is_seen_by_every_rank(tmp_path):
    assert _run(tmp_path, gloo_twin=False) == [[True, False, True]] * 2


def test_the_flag_goes_through_a_gloo_twin_when_the_backend_is_not_gloo(tmp_path):
    assert _run(tmp_path, gloo_twin=True) == [[True, False, True]] * 2


def test_without_a_process_group_the_flag_is_this_process_s():
    assert any_rank(True) is True and any_rank(False) is False
