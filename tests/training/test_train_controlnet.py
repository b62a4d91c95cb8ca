"""Training a ControlNet on a tiny base run: the base stays bit for bit, the ControlNet moves,
and a run that does not match its base is refused by name."""

import importlib.util
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from difflab.conditioning import Condition
from difflab.config.recipes import load_config
from difflab.core.errors import ConfigError
from difflab.networks import ControlledUNet, build_network
from difflab.runs.checkpoint import latest_checkpoint, load_checkpoint
from difflab.runs.load import load_run
from difflab.runs.metrics import read_metrics
from difflab.training import loop
from difflab.training.flops import train_flops_per_image
from difflab.training.loop import train

TINY = str(Path(__file__).with_name("tiny.yaml"))
QUIET = ["train.sample_every=0", "train.val_every=0", "train.checkpoint_every=100"]


def _run(tmp_path: Path, name: str, steps: int, *extra: str, stop_at: int | None = None) -> Path:
    overrides = [f"run.root={tmp_path}", f"run.name={name}", f"train.steps={steps}", *QUIET]
    return train(load_config(TINY, [*overrides, *extra]), tensorboard=False, stop_at=stop_at)


def _losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir) if "loss" in r]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path, Path, list[str]]:
    """(root, base run, ControlNet run of 3 steps, the ControlNet overrides)."""
    root = tmp_path_factory.mktemp("controlnet")
    base_dir = _run(root, "base", 2)
    controlnet = [
        f"model.controlnet.base_run={base_dir}",
        "model.controlnet.hint_options={factor: 2}",
    ]
    with pytest.MonkeyPatch.context() as patch:
        # A known peak makes the loop count FLOPs (CUDA only otherwise), which needs the hint.
        patch.setattr(loop, "peak_flops", lambda device: 1e12)
        run_dir = _run(root, "cn", 3, *controlnet)
    return root, base_dir, run_dir, controlnet


def test_controlnet_trains_on_a_frozen_base_run(runs):
    _, base_dir, run_dir, _ = runs
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


def test_resume_reads_no_base_run_and_repeats_the_losses(runs):
    root, _, run_dir, controlnet = runs
    first = _run(root, "resumed", 3, *controlnet, "train.checkpoint_every=2", stop_at=2)
    # Base and ControlNet come from the run's own checkpoint: the base run need not exist.
    absent = f"model.controlnet.base_run={root / 'absent'}"
    assert _run(root, "resumed", 3, *controlnet, absent, f"train.resume={first}") == first
    assert _losses(first) == _losses(run_dir) and len(_losses(first)) == 3
    resumed = load_checkpoint(latest_checkpoint(first))
    expected = load_checkpoint(latest_checkpoint(run_dir))
    assert all(torch.equal(resumed.model[k], v) for k, v in expected.model.items())


def test_a_run_that_does_not_match_its_base_run_is_refused(runs):
    root, _, run_dir, controlnet = runs
    with pytest.raises(ConfigError, match=r"'model.parameterization' is 'eps'.*has 'v'"):
        _run(root, "bad", 1, *controlnet, "model.parameterization=eps")
    with pytest.raises(ConfigError, match=r"'model.network' is 'dit-tiny'.*has 'unet-tiny'"):
        _run(root, "bad", 1, *controlnet, "model.network=dit-tiny", "model.options={}")
    with pytest.raises(ConfigError, match=r"data gives \(1, 16, 16\)"):
        _run(root, "bad", 1, *controlnet, "data.image_size=16")
    with pytest.raises(ConfigError, match="is itself a ControlNet run"):
        _run(root, "bad", 1, f"model.controlnet.base_run={run_dir}")


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


@pytest.mark.skipif(
    importlib.util.find_spec("cv2") is None or importlib.util.find_spec("skimage") is None,
    reason="OpenCV or scikit-image is absent (difflab[hints])",
)
def test_a_scribble_controlnet_resumes_with_the_same_random_scribbles(runs):
    """Scribbles are drawn from each step's generator, so a resumed run repeats the losses."""
    root, base_dir, _, _ = runs
    scribble = [
        f"model.controlnet.base_run={base_dir}",
        "model.controlnet.hint=scribble",
        "model.controlnet.hint_options={break_rate: 0.3, max_radius: 1, threshold: 0.05}",
    ]
    whole = _run(root, "scribble", 3, *scribble)
    first = _run(root, "scribble-r", 3, *scribble, "train.checkpoint_every=2", stop_at=2)
    assert _run(root, "scribble-r", 3, *scribble, f"train.resume={first}") == first
    assert _losses(first) == _losses(whole) and len(_losses(whole)) == 3
    resumed = load_checkpoint(latest_checkpoint(first)).model
    expected = load_checkpoint(latest_checkpoint(whole)).model
    assert all(torch.equal(resumed[k], v) for k, v in expected.items())
