"""Resume is exact: 3 steps + resume 3 steps give the losses of 6 straight steps."""

from pathlib import Path

import pytest
import torch

from difflab.config.recipes import load_config
from difflab.core.errors import CheckpointError
from difflab.runs.checkpoint import latest_checkpoint, load_checkpoint
from difflab.runs.metrics import read_metrics
from difflab.training.loop import train

pytestmark = pytest.mark.numerics  # run again under other CPU kernels by .ci/run

TINY = str(Path(__file__).with_name("tiny.yaml"))


def _losses(run_dir):
    return [r["loss"] for r in read_metrics(run_dir) if "loss" in r]


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_resume_gives_bit_identical_losses(tmp_path, grad_accum):
    common = [
        f"run.root={tmp_path}",
        f"train.grad_accum={grad_accum}",
        "train.batch_size=4",
        "train.lr_schedule=cosine",
        "train.ema_start=1",
        "train.sample_every=0",
        "train.val_every=0",
        "train.cond_dropout=0.5",
        "data.flip=true",
    ]
    straight = train(load_config(TINY, [*common, "run.name=a", "train.steps=6"]), tensorboard=False)
    first = train(
        load_config(TINY, [*common, "run.name=b", "train.steps=6", "train.checkpoint_every=5"]),
        tensorboard=False,
        stop_at=3,
    )
    assert [p.name for p in (first / "checkpoints").iterdir()] == ["step-000003"]
    resumed = load_config(TINY, [*common, "run.name=b", "train.steps=6", f"train.resume={first}"])
    assert train(resumed, tensorboard=False) == first
    assert len(_losses(straight)) == 6
    assert _losses(first) == _losses(straight)  # bit for bit, JSON floats round-trip
    a, b = (load_checkpoint(latest_checkpoint(run)) for run in (straight, first))
    assert a.step == b.step == 6
    for name in a.model:
        assert torch.equal(a.model[name], b.model[name]) and torch.equal(a.ema[name], b.ema[name])
    records = read_metrics(first)
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]


def test_resume_without_checkpoint_is_an_error(tmp_path):
    config = load_config(TINY, [f"train.resume={tmp_path / 'empty'}"])
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        train(config, tensorboard=False)
