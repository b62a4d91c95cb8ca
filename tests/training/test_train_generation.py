"""generate(): per-sample seeds, labels, guidance and an unconditional model."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from difflab.conditioning import NULL_LABEL
from difflab.config.recipes import load_config
from difflab.core.errors import ConfigError
from difflab.runs.load import load_run
from difflab.sampling.generation import generate, resolve_labels
from difflab.training.loop import train

TINY = str(Path(__file__).with_name("tiny.yaml"))
FAST = ["train.steps=1", "train.sample_every=0", "train.val_every=0"]


def test_resolve_labels():
    assert resolve_labels(None, 5, 3).tolist() == [0, 1, 2, 0, 1]
    assert resolve_labels([7, 2], 3, 10).tolist() == [7, 2, 7]
    assert resolve_labels(None, 2, 0) is None
    with pytest.raises(ConfigError, match="label 10 is outside 0..9"):
        resolve_labels([10], 1, 10)
    with pytest.raises(ConfigError, match="unconditional"):
        resolve_labels([1], 1, 0)


def test_unconditional_run_trains_and_samples(tmp_path):
    config = load_config(TINY, [*FAST, f"run.root={tmp_path}", "model.class_conditional=false"])
    run = load_run(train(config, tensorboard=False), weights="raw")
    assert run.num_classes == 0 and run.image_shape == (1, 8, 8)
    images, labels = generate(run, num=3, sample=replace(run.config.sample, steps=2), seed=5)
    assert images.shape == (3, 1, 8, 8) and images.dtype == torch.uint8
    assert labels.tolist() == [NULL_LABEL] * 3


def test_guidance_and_weights_change_the_images(tmp_path):
    overrides = ["train.steps=3", "train.lr=0.05", "train.ema_decay=0.9"]
    run_dir = train(
        load_config(TINY, [*FAST, f"run.root={tmp_path}", *overrides]), tensorboard=False
    )
    ema, raw = load_run(run_dir, weights="ema"), load_run(run_dir, weights="raw")
    one, four = (replace(raw.config.sample, guidance=w, steps=2) for w in (1.0, 4.0))
    a, _ = generate(raw, num=2, labels=[1], sample=one)
    b, _ = generate(raw, num=2, labels=[1], sample=four)
    c, _ = generate(ema, num=2, labels=[1], sample=one)
    again, _ = generate(raw, num=2, labels=[1], sample=one)
    assert torch.equal(a, again)
    assert not torch.equal(a, b) and not torch.equal(a, c)
