"""A NaN loss or an infinite gradient at step k is skipped (weights, EMA and optimizer as
before it, finite everywhere, counted in the metrics); train.max_nonfinite_steps skipped in a
row stop training with TrainingError, and no checkpoint ever holds a NaN."""

import math
from pathlib import Path

import pytest
import torch

from difflab.config.recipes import load_config
from difflab.core.errors import TrainingError
from difflab.runs.checkpoint import load_checkpoint
from difflab.runs.metrics import read_metrics
from difflab.training import loop
from difflab.training import step as step_module
from difflab.training.batches import DeviceData
from difflab.training.loop import train
from difflab.training.step import MicroBatch

TINY = str(Path(__file__).parents[1] / "training" / "tiny.yaml")


def _config(tmp_path, *extra):
    overrides = [f"run.root={tmp_path}", "train.sample_every=0", "train.val_every=0"]
    overrides += ["train.batch_size=4", "train.ema_decay=0.5", *extra]
    return load_config(TINY, overrides)


def _nan_batches_from(monkeypatch, first: int, last: int = 10**9) -> None:
    """Micro-batches first..last (by index) hold a NaN pixel."""
    real = DeviceData.micro_batch

    def micro_batch(self, index, generator):
        batch = real(self, index, generator)
        if first <= index <= last:
            x0 = batch.x0.clone()
            x0[0, 0, 0, 0] = float("nan")
            return MicroBatch(x0=x0, cond=batch.cond)
        return batch

    monkeypatch.setattr(DeviceData, "micro_batch", micro_batch)


def _inf_grad_at(monkeypatch, k: int) -> None:
    """At step k the loss is finite but one parameter's gradient is infinite."""
    real = step_module.train_step

    def train_step(state, batches, generator, step):
        if step != k:
            return real(state, batches, generator, step)
        param = next(state.model.parameters())
        hook = param.register_hook(lambda g: torch.full_like(g, math.inf))
        try:
            return real(state, batches, generator, step)
        finally:
            hook.remove()

    monkeypatch.setattr("difflab.training.loop.train_step", train_step)


def _watch_step(monkeypatch, k: int) -> dict:
    """Record the weights, EMA and optimizer step count around step k."""
    real, seen = loop.train_step, {}

    def snapshot(state):
        optim_steps = [float(s["step"]) for s in state.optimizer.state.values()]
        weights = {n: v.clone() for n, v in state.model.state_dict().items()}
        ema = {n: v.clone() for n, v in state.ema.module.state_dict().items()}
        return weights, ema, optim_steps

    def train_step(state, batches, generator, step):
        if step == k:
            seen["before"] = snapshot(state)
        out = real(state, batches, generator, step)
        if step == k:
            seen["after"], seen["skipped"] = snapshot(state), out[1].item()
        return out

    monkeypatch.setattr("difflab.training.loop.train_step", train_step)
    return seen


@pytest.mark.parametrize(("inject", "what"), [("nan", "loss"), ("inf-grad", "gradient norm")])
def test_one_bad_step_is_skipped_and_weights_stay_finite(tmp_path, monkeypatch, inject, what):
    k = 2  # 0-based: the third step
    if inject == "nan":
        _nan_batches_from(monkeypatch, k, k)
    else:
        _inf_grad_at(monkeypatch, k)
    seen = _watch_step(monkeypatch, k)  # wraps the (possibly patched) step
    with pytest.warns(UserWarning, match=f"non-finite {what} at step {k}; step skipped"):
        run_dir = train(_config(tmp_path, "train.steps=5"), tensorboard=False)
    assert seen["skipped"] == 1.0
    for before, after in zip(seen["before"], seen["after"], strict=True):
        if isinstance(before, dict):
            assert all(torch.equal(before[n], after[n]) for n in before)
        else:
            assert before == after  # the optimizer did not count a step
    records = [r for r in read_metrics(run_dir) if "loss" in r]
    assert [r["skipped"] for r in records] == [0, 0, 1, 0, 0]
    assert records[2]["loss"] is None and all(math.isfinite(r["loss"]) for r in records[3:])
    ckpt = load_checkpoint(run_dir / "checkpoints" / "step-000005")
    for tensors in (ckpt.model, ckpt.ema):
        assert all(torch.isfinite(v).all() for v in tensors.values())


def test_too_many_non_finite_steps_in_a_row_stop_training(tmp_path, monkeypatch):
    _nan_batches_from(monkeypatch, 1)  # every step from the second on
    config = _config(tmp_path, "train.steps=8", "train.max_nonfinite_steps=3")
    with (
        pytest.warns(UserWarning, match="non-finite loss"),
        pytest.raises(TrainingError, match=r"3 steps in a row .*max_nonfinite_steps=3.*step 3"),
    ):
        train(config, tensorboard=False)
    ckpt = load_checkpoint(tmp_path / "tiny" / "checkpoints" / "step-000002")
    assert all(torch.isfinite(v).all() for v in [*ckpt.model.values(), *ckpt.ema.values()])
