"""Training a ControlNet on a tiny base run: the base stays bit for bit, the ControlNet moves,
and a run that does not match its base is refused by name."""

from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from difflab.conditioning import Condition
from difflab.errors import ConfigError
from difflab.generation import load_run
from difflab.networks import ControlledUNet, build_network
from difflab.training import loop
from difflab.training.checkpoint import latest_checkpoint, load_checkpoint
from difflab.training.flops import train_flops_per_image
from difflab.training.loop import train
from difflab.training.recipes import load_config
from difflab.training.reporting import read_metrics

TINY = str(Path(__file__).with_name("tiny.yaml"))
QUIET = ["train.sample_every=0", "train.val_every=0", "train.checkpoint_every=100"]


def _run(tmp_path: Path, name: str, steps: int, *extra: str) -> Path:
    overrides = [f"run.root={tmp_path}", f"run.name={name}", f"train.steps={steps}", *QUIET]
    return train(load_config(TINY, [*overrides, *extra]), tensorboard=False)


def test_controlnet_trains_on_a_frozen_base_run(tmp_path, monkeypatch):
    base_dir = _run(tmp_path, "base", 2)
    # A known peak makes the loop count FLOPs (CUDA only otherwise), which needs the hint.
    monkeypatch.setattr(loop, "peak_flops", lambda device: 1e12)
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
    assert all(r["mfu"] > 0 for r in read_metrics(run_dir) if "loss" in r)

    with pytest.raises(ConfigError, match=r"'model.parameterization' is 'eps'.*has 'v'"):
        _run(tmp_path, "bad", 1, *controlnet, "model.parameterization=eps")


def test_controlnet_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"model\.controlnet\.hint'"):
        load_config(TINY, ["model.controlnet.hint=sobel"])
    with pytest.raises(ConfigError, match=r"model\.controlnet\.hint_options.*factor"):
        load_config(TINY, ["model.controlnet.hint_options={factor: 0}"])


def test_flops_of_a_controlled_unet_are_its_forward_and_backward_with_a_hint():
    options = {"base_channels": 8, "norm_groups": 4, "attention_resolutions": ()}
    base = build_network("unet-tiny", in_channels=1, image_size=8, num_classes=3, options=options)
    model = ControlledUNet.from_unet(base, hint_channels=1).freeze_base()
    cond = Condition(labels=torch.tensor([1]), hint=torch.zeros(1, 1, 8, 8))
    counted = train_flops_per_image(model, (1, 8, 8), cond)
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 1, 8, 8), torch.tensor([500.0]), cond).square().mean().backward()
    # CPU's fused attention has no FLOP formula: add the middle blocks' (16 tokens, 16 channels)
    # by hand, 4 L^2 C forward; the ControlNet's also backward (twice that), the frozen base's not
    # (nothing before it needs a gradient).
    forward = 4 * 16**2 * 16
    assert counted == counter.get_total_flops() + forward + 3 * forward
