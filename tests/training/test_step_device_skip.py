"""The skip decided on the device (fused AdamW, no fp16 scaler): a NaN loss or an infinite
gradient leaves weights, AdamW state and EMA exactly as they were, with no host read in the
step; applied steps are bit for bit those of the host-sync path; the loop counts skips on the
device and stops at the next boundary after train.max_nonfinite_steps in a row."""

import copy
import math
import warnings
from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from difflab.config.recipes import load_config
from difflab.config.schema import TrainConfig
from difflab.core.errors import TrainingError
from difflab.losses import DenoisingLoss
from difflab.runs.checkpoint import load_checkpoint
from difflab.runs.metrics import read_metrics
from difflab.schedules import make_schedule
from difflab.training import step as step_module
from difflab.training.batches import DeviceData
from difflab.training.ema import EMA
from difflab.training.loop import train
from difflab.training.optim import build_optimizer
from difflab.training.precision import resolve_precision
from difflab.training.step import MicroBatch, TrainState, skips_on_device, train_step
from difflab.training.step_counts import StepCounts

TINY = str(Path(__file__).parent / "tiny.yaml")
CPU = torch.device("cpu")
NO_SAMPLES = ["train.sample_every=0", "train.val_every=0"]


def fused_adamw(model: nn.Module, train: TrainConfig, device: torch.device):
    """The trainer's optimizer as built on CUDA (fused AdamW), here on CPU, where torch's
    fused kernel runs too."""
    return build_optimizer(model, train, torch.device("cuda"))


class CountingNet(nn.Module):
    """A small conv net with an integer buffer, counting its forward passes."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv2d(1, 8, 3, padding=1)
        self.out = nn.Conv2d(8, 1, 3, padding=1)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, x, t_net, cond):
        self.calls += 1
        return self.out(torch.nn.functional.silu(self.inp(x) + (t_net / 1000).view(-1, 1, 1, 1)))


def make_state(net: nn.Module, *, fused: bool = True, ema_start: int = 0) -> TrainState:
    cfg = TrainConfig(lr=1e-2, weight_decay=0.1, precision="fp32")
    build = fused_adamw if fused else build_optimizer
    return TrainState(
        model=net,
        forward=net,
        optimizer=build(net, cfg, CPU),
        ema=EMA(net, 0.9, start=ema_start),
        precision=resolve_precision("fp32", CPU),
        loss_fn=DenoisingLoss(make_schedule("cosine", num_steps=100), "eps"),
        grad_clip=1.0,
        cond_dropout=0.0,
    )


def batch(nan: bool = False) -> MicroBatch:
    x0 = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(1)) * 2 - 1
    if nan:
        x0[0, 0, 0, 0] = float("nan")
    return MicroBatch(x0=x0, cond=None)


def step(state: TrainState, i: int, nan: bool = False):
    return train_step(state, [batch(nan)], torch.Generator().manual_seed(i), i)


def snapshot(state: TrainState) -> dict[str, torch.Tensor]:
    """Weights and buffers, EMA, and every AdamW state tensor (moments and step counts)."""
    tensors = {f"model.{k}": v for k, v in state.model.state_dict().items()}
    tensors |= {f"ema.{k}": v for k, v in state.ema.module.state_dict().items()}
    for i, s in enumerate(state.optimizer.state.values()):
        tensors |= {f"adamw.{i}.{k}": v for k, v in s.items()}
    return {k: v.clone() for k, v in tensors.items()}


def equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_device_path_is_chosen_for_fused_adamw_without_a_grad_scaler():
    assert skips_on_device(make_state(CountingNet()))
    assert not skips_on_device(make_state(CountingNet(), fused=False))  # foreach AdamW


def _infinite_grad(state: TrainState):
    """A hook that makes one parameter's gradient infinite (the loss stays finite)."""
    return next(state.model.parameters()).register_hook(lambda g: torch.full_like(g, math.inf))


@pytest.mark.parametrize("fault", ["nan-loss", "inf-grad"])
def test_a_non_finite_step_leaves_weights_adamw_and_ema_as_they_were(fault):
    net = CountingNet()
    state = make_state(net)
    for i in range(2):
        step(state, i)
    before = snapshot(state)
    hook = _infinite_grad(state) if fault == "inf-grad" else None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the device path decides without a warning
        loss, skipped = step(state, 2, nan=fault == "nan-loss")
    if hook is not None:
        hook.remove()
    assert skipped.dtype == torch.float32 and skipped.shape == () and skipped.item() == 1.0
    assert torch.isfinite(loss).item() is (fault == "inf-grad")
    after = snapshot(state)
    assert int(before.pop("model.calls")) == 2 and int(after.pop("model.calls")) == 3
    assert equal(before, after)  # the forward ran, but the EMA's integer copy stays too
    assert len(before) == 4 + 5 + 4 * 3 and int(after["ema.calls"]) == 2
    assert [float(s["step"]) for s in state.optimizer.state.values()] == [2.0] * 4
    _, skipped = step(state, 3)
    assert skipped.item() == 0.0
    assert [float(s["step"]) for s in state.optimizer.state.values()] == [3.0] * 4
    assert int(state.ema.module.calls) == 4


def test_applied_steps_are_bit_for_bit_those_of_the_host_sync_path(monkeypatch):
    torch.manual_seed(0)
    net = CountingNet()
    on_device, on_host = make_state(net, ema_start=1), make_state(copy.deepcopy(net), ema_start=1)
    for i in range(3):  # step 0 copies the EMA, steps 1 and 2 average
        step(on_device, i)
    monkeypatch.setattr(step_module, "skips_on_device", lambda state: False)
    for i in range(3):
        step(on_host, i)
    assert equal(snapshot(on_device), snapshot(on_host))
    assert not torch.equal(on_device.ema.module.inp.weight, net.inp.weight)  # averaged


def test_the_ema_update_with_a_flag_is_the_update_without_it_chunk_by_chunk(monkeypatch):
    monkeypatch.setattr("difflab.training.ema.CHUNK", 100)  # [conv weight, bias], [the rest]
    net = CountingNet()
    without, applied, skipped = (EMA(net, 0.9) for _ in range(3))
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    net.calls += 5
    without.update(net, 0)
    applied.update(net, 0, skipped=torch.tensor(0.0))
    skipped.update(net, 0, skipped=torch.tensor(1.0))
    moved, same, held = (e.module.state_dict() for e in (without, applied, skipped))
    assert equal(same, moved) and int(same["calls"]) == 5
    assert equal(held, initial) and not equal(moved, initial)


class HostReads(TorchDispatchMode):
    """Records the aten ops that read a tensor's value on the host (item, bool, float)."""

    READS = {
        torch.ops.aten._local_scalar_dense.default,
        torch.ops.aten.is_nonzero.default,
        torch.ops.aten.equal.default,
    }

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in self.READS:
            self.reads.append(str(func))
        return func(*args, **(kwargs or {}))


def host_reads(run, monkeypatch) -> list[str]:
    """The host reads made by run(): aten ops, and Tensor.tolist (which dispatches none)."""
    reads = HostReads()
    tolist = torch.Tensor.tolist

    def recorded_tolist(self):
        reads.reads.append("tolist")
        return tolist(self)

    with monkeypatch.context() as patch, reads:
        patch.setattr(torch.Tensor, "tolist", recorded_tolist)
        run()
    return reads.reads


def test_the_device_path_reads_nothing_on_the_host(monkeypatch):
    state = make_state(CountingNet())
    step(state, 0)  # AdamW's state is created at the first step
    assert host_reads(lambda: step(state, 1), monkeypatch) == []
    assert host_reads(lambda: step(state, 2, nan=True), monkeypatch) == []
    monkeypatch.setattr(step_module, "skips_on_device", lambda state: False)
    assert host_reads(lambda: step(state, 3), monkeypatch) == ["tolist"]  # the detector sees it


def test_the_training_loop_reads_nothing_per_step(tmp_path, monkeypatch):
    """Setup, the log record and the final checkpoint read the host; more steps read no more."""
    monkeypatch.setattr("difflab.training.session.build_optimizer", fused_adamw)
    every = ["train.log_every=100", "train.checkpoint_every=100", *NO_SAMPLES]
    reads = []
    for steps in (2, 4):
        overrides = [f"run.root={tmp_path / str(steps)}", f"train.steps={steps}", *every]
        config = load_config(TINY, [*overrides, "train.batch_size=4"])
        reads.append(host_reads(partial(train, config, tensorboard=False), monkeypatch))
    assert reads[0] == reads[1] and "tolist" in reads[0]  # the one read of the counters


def test_step_counts_on_the_device():
    counts = StepCounts(CPU, max_nonfinite_steps=3)
    flags = [0, 1, 1, 0, 1, 1, 1, 1, 0]
    for i, flag in enumerate(flags):
        loss = torch.tensor(float("nan") if flag else i + 0.5)
        counts.add(loss, torch.tensor(float(flag)), i)
    seen = counts.read()
    assert seen.skipped == 6 and seen.limit_reached_at == 6
    assert seen.loss_sum == 0.5 + 3.5 + 8.5
    with pytest.raises(TrainingError, match=r"^3 steps in a row .*=3\), the last at step 6; "):
        counts.check(seen, 9)
    counts.reset_window()
    assert counts.read().skipped == 0 and counts.read().limit_reached_at == 6


def _fused_run(tmp_path, monkeypatch, nan_steps: range, *extra: str):
    """A tiny training run with fused AdamW whose micro-batches in nan_steps hold a NaN."""
    monkeypatch.setattr("difflab.training.session.build_optimizer", fused_adamw)
    real = DeviceData.micro_batch

    def micro_batch(self, index, generator):
        b = real(self, index, generator)
        return MicroBatch(x0=b.x0 * math.nan, cond=b.cond) if index in nan_steps else b

    monkeypatch.setattr(DeviceData, "micro_batch", micro_batch)
    overrides = [f"run.root={tmp_path}", *NO_SAMPLES]
    return load_config(TINY, [*overrides, "train.batch_size=4", *extra])


def test_a_skipped_step_is_counted_in_the_metrics_of_a_device_run(tmp_path, monkeypatch):
    config = _fused_run(tmp_path, monkeypatch, range(2, 3), "train.steps=5")
    with pytest.warns(UserWarning, match=r"^1 of the 1 steps up to step 2 skipped: non-finite"):
        run_dir = train(config, tensorboard=False)
    records = [r for r in read_metrics(run_dir) if "loss" in r]
    assert [r["skipped"] for r in records] == [0, 0, 1, 0, 0]
    assert records[2]["loss"] is None and all(math.isfinite(r["loss"]) for r in records[3:])
    ckpt = load_checkpoint(run_dir / "checkpoints" / "step-000005")
    assert all(torch.isfinite(v).all() for v in [*ckpt.model.values(), *ckpt.ema.values()])


def test_skips_in_a_row_stop_training_at_the_next_boundary(tmp_path, monkeypatch):
    every = ["train.log_every=5", "train.checkpoint_every=5", "train.max_nonfinite_steps=2"]
    config = _fused_run(tmp_path, monkeypatch, range(1, 3), "train.steps=8", *every)
    with (
        pytest.warns(UserWarning, match="2 of the 5 steps up to step 4 skipped"),
        pytest.raises(TrainingError, match=r"2 steps in a row .*at step 2; seen after 5 steps"),
    ):
        train(config, tensorboard=False)  # steps 3 and 4 were fine, but the limit was reached
    run_dir = tmp_path / "tiny"
    assert [r["skipped"] for r in read_metrics(run_dir) if "loss" in r] == [2]
    assert not (run_dir / "checkpoints" / "step-000005").exists()
