"""In-process checks of the pieces that make 2 processes train like 1: the ranks' parts of a
micro-batch and of its random draws put together are the single-process ones; gradient
accumulation all-reduces once per step; a batch that does not split is a ConfigError."""

import gc
import types
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel

from difflab.config.schema import DataConfig
from difflab.core.errors import ConfigError
from difflab.data import load_dataset
from difflab.losses import DenoisingLoss
from difflab.networks import build_network
from difflab.parallel import distributed
from difflab.parallel.sharding import gradient_sync, repeated_blocks
from difflab.runs.rng import seeded_generator
from difflab.schedules import make_schedule
from difflab.training import batches
from difflab.training.precision import resolve_precision
from difflab.training.step import micro_batch_loss

pytestmark = pytest.mark.numerics  # run again under other CPU kernels by .ci/run

CPU = torch.device("cpu")


def _device_data(monkeypatch, rank: int, world: int, batch_size: int = 8) -> batches.DeviceData:
    monkeypatch.setattr(batches, "rank", lambda: rank)
    monkeypatch.setattr(batches, "world_size", lambda: world)
    return batches.DeviceData(
        load_dataset("digits", split="train"),
        data=DataConfig(flip=True),
        batch_size=batch_size,
        seed=3,
        class_conditional=True,
        device=CPU,
    )


class _Recorder(DenoisingLoss):
    """A loss function that returns what it was given (its t drawn as DenoisingLoss draws)."""

    def __call__(self, forward, x0, t, eps, cond):
        return x0, t, eps, cond.labels


def _draws(
    data: batches.DeviceData, micro_index: int, noise_offset: float = 0.0
) -> list[torch.Tensor]:
    """(x0, t, eps, labels after dropout) of this rank's part of a micro-batch."""
    generator = seeded_generator(3, "step", 5, CPU)
    batch = data.micro_batch(micro_index, generator)
    loss = _Recorder(make_schedule("cosine"), "eps")
    state = SimpleNamespace(loss_fn=loss, forward=None, noise_offset=noise_offset, keep_hint=False)
    state.precision = resolve_precision("fp32", torch.device("cpu"))
    return list(micro_batch_loss(state, batch, generator, cond_dropout=0.5))


@pytest.mark.parametrize("offset", [0.0, 0.1])
def test_rank_parts_of_a_micro_batch_and_its_noise_make_the_whole(monkeypatch, offset):
    whole = _draws(_device_data(monkeypatch, 0, 1), 130, offset)  # epoch 1: a new order
    parts = [_draws(_device_data(monkeypatch, r, 2), 130, offset) for r in (0, 1)]
    for k, name in enumerate(("x0 (flipped)", "t", "eps", "labels (dropped)")):
        assert torch.equal(torch.cat([p[k] for p in parts]), whole[k]), name
    assert (whole[3] == -1).any() and whole[0].shape[0] == 8


def test_batch_that_does_not_split_over_the_ranks_is_a_config_error(monkeypatch):
    with pytest.raises(ConfigError, match=r"'train.batch_size' \(7\) must divide by .* \(2\)"):
        _device_data(monkeypatch, 0, 2, batch_size=7)


def test_shard_rows_pad_every_rank_to_the_same_count(monkeypatch):
    assert distributed.shard_rows(5) == range(5)
    x = torch.arange(6)
    assert torch.equal(distributed.gather_rows(x, 5), x[:5])
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    assert distributed.shard_rows(5) == range(3, 6)


def _count_all_reduces_with_accumulation() -> None:
    model = nn.Linear(4, 4)
    ddp = DistributedDataParallel(model)
    calls = []
    ddp.register_comm_hook(None, lambda s, bucket: calls.append(1) or allreduce_hook(s, bucket))
    for k in range(3):  # grad_accum = 3
        with gradient_sync(ddp, model, enabled=k == 2):
            ddp(torch.randn(2, 4)).sum().backward()
    assert len(calls) == 1
    ddp(torch.randn(2, 4)).sum().backward()  # outside accumulation: every backward reduces
    assert len(calls) == 2


def test_ddp_accumulation_all_reduces_once_per_step():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        _count_all_reduces_with_accumulation()
    finally:
        # DDP's reducer holds the process group: free it first, or destroying the group later
        # (at garbage collection or interpreter exit) can deadlock joining gloo's threads.
        gc.collect()
        dist.destroy_process_group()


def test_fsdp_units_are_the_blocks_a_network_calls():
    """UNet blocks and DiT blocks are sharded units; a UNet level (a container whose forward
    is never called, so FSDP2 would never gather its weights) is not."""
    unet = build_network("unet-tiny", in_channels=1, image_size=8, num_classes=None)
    blocks = repeated_blocks(unet)
    assert [type(b).__name__ for b in blocks] == ["UNetBlock"] * len(blocks)
    expected = sum(len(level.blocks) for level in [*unet.down, *unet.up]) + len(unet.mid)
    assert len(blocks) == expected
    dit = build_network("dit-tiny", in_channels=1, image_size=8, num_classes=None)
    assert repeated_blocks(dit) == list(dit.blocks)


def test_ranks_agree_on_a_stop_every_few_steps_one_process_every_step(monkeypatch):
    from difflab.training import loop

    agreed = []
    monkeypatch.setattr(loop, "any_rank", lambda flag: agreed.append(flag) or flag)
    stop = types.SimpleNamespace(signum=15)
    monkeypatch.setattr(loop, "is_distributed", lambda: True)
    asked = [done for done in range(1, 31) if loop._stop_requested(stop, done)]
    assert asked == [10, 20, 30] and len(agreed) == 3
    monkeypatch.setattr(loop, "is_distributed", lambda: False)
    assert all(loop._stop_requested(stop, done) for done in range(1, 5))
    assert not loop._stop_requested(None, 3)
