"""A checkpoint holds everything exact resume needs, and resuming restores it: weights, EMA
and its step, optimizer, LR schedule, grad scaler, step, the global RNGs (python, numpy,
torch; CUDA when present) and the data position. The noise, t, dropout and flips of step k
come from a generator seeded by (train.seed, k), so the step is their whole state."""

import random
from pathlib import Path

import numpy as np
import torch

from difflab.config.recipes import load_config
from difflab.parallel.sharding import full_optimizer_state
from difflab.runs.checkpoint import load_latest_checkpoint
from difflab.training.loop import train
from difflab.training.session import open_training_run

TINY = str(Path(__file__).parents[1] / "training" / "tiny.yaml")


def test_checkpoint_state_is_complete_and_restored(tmp_path):
    common = [f"run.root={tmp_path}", "train.steps=6", "train.sample_every=0"]
    common += ["train.val_every=0", "train.batch_size=4", "train.grad_accum=2"]
    common += ["train.lr_schedule=cosine"]
    run_dir = train(load_config(TINY, common), tensorboard=False, stop_at=3)
    ckpt = load_latest_checkpoint(run_dir)
    state = ckpt.state
    assert ckpt.step == 3 and state["ema_step"] == 3
    assert state["lr_schedule"] == {"name": "cosine", "step": 3}
    assert set(state["rng"]) >= {"python", "numpy", "torch"}
    assert {"state", "param_groups"} <= set(state["optimizer"])
    assert "scale" in state["scaler"] or state["scaler"] == {}  # fp32: the scaler is off
    assert set(ckpt.model) == set(ckpt.ema) and len(ckpt.model) > 0
    # 3 steps of 2 micro-batches: the next is micro-batch 6 of epoch 0.
    assert state["data_position"] == {"epoch": 0, "batch": 6}

    random.seed(123)  # disturb every global RNG: resume must put them back
    np.random.seed(123)
    torch.manual_seed(123)
    session = open_training_run(load_config(TINY, [*common, f"train.resume={run_dir}"]))
    assert session.start_step == 3
    assert torch.equal(torch.get_rng_state(), state["rng"]["torch"])
    assert random.getstate()[1] == tuple(state["rng"]["python"][1])
    assert np.array_equal(np.random.get_state()[1], state["rng"]["numpy"]["keys"].numpy())
    for name, value in session.state.model.state_dict().items():
        assert torch.equal(value, ckpt.model[name])
        assert torch.equal(session.state.ema.module.state_dict()[name], ckpt.ema[name])
    restored = full_optimizer_state(session.state.model, session.state.optimizer)["state"]
    for index, saved in state["optimizer"]["state"].items():
        assert all(torch.equal(restored[index][k], v) for k, v in saved.items())
