"""Training a ControlNet on a tiny base run: the base stays bit for bit, the ControlNet moves,
and a run that does not match its base is refused by name."""

from pathlib import Path

import pytest
import torch

from difflab.errors import ConfigError
from difflab.generation import load_run
from difflab.networks import ControlledUNet
from difflab.training.checkpoint import latest_checkpoint, load_checkpoint
from difflab.training.loop import train
from difflab.training.recipes import load_config

TINY = str(Path(__file__).with_name("tiny.yaml"))
QUIET = ["train.sample_every=0", "train.val_every=0", "train.checkpoint_every=100"]


def _run(tmp_path: Path, name: str, steps: int, *extra: str) -> Path:
    overrides = [f"run.root={tmp_path}", f"run.name={name}", f"train.steps={steps}", *QUIET]
    return train(load_config(TINY, [*overrides, *extra]), tensorboard=False)


def test_controlnet_trains_on_a_frozen_base_run(tmp_path):
    base_dir = _run(tmp_path, "base", 2)
    controlnet = [
        f"model.controlnet.base_run={base_dir}",
        "model.controlnet.hint_options={factor: 2}",
    ]
    run_dir = _run(tmp_path, "cn", 3, *controlnet)
    base = load_checkpoint(latest_checkpoint(base_dir))
    run = load_checkpoint(latest_checkpoint(run_dir))
    assert run.step == 3
    for key, value in base.ema.items():
        assert torch.equal(run.model[f"base.{key}"], value), key
        assert torch.equal(run.ema[f"base.{key}"], value), key
    # Zero convolutions moved at step 1, the encoder copy and the hint encoder's last conv at 2.
    for key in ("zero_convs.0.weight", "mid_zero_conv.weight", "hint_encoder.layers.4.weight"):
        assert run.model[f"controlnet.{key}"].abs().sum() > 0, key
    assert not torch.equal(run.model["controlnet.conv_in.weight"], base.ema["conv_in.weight"])
    assert isinstance(load_run(run_dir).denoiser.network, ControlledUNet)

    with pytest.raises(ConfigError, match=r"'model.parameterization' is 'eps'.*has 'v'"):
        _run(tmp_path, "bad", 1, *controlnet, "model.parameterization=eps")


def test_controlnet_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"model\.controlnet\.hint'"):
        load_config(TINY, ["model.controlnet.hint=sobel"])
    with pytest.raises(ConfigError, match=r"model\.controlnet\.hint_options.*factor"):
        load_config(TINY, ["model.controlnet.hint_options={factor: 0}"])
