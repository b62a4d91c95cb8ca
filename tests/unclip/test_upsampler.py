"""unCLIP's upsampler: shapes, its noise-augmented low-resolution condition, resume exact."""

from pathlib import Path

import pytest
import torch

from difflab.conditioning import Condition
from difflab.config.recipes import load_config
from difflab.config.schema import SampleConfig
from difflab.core.errors import ConfigError
from difflab.integrations.unclip.augment import low_res, low_res_condition, noise_augment
from difflab.integrations.unclip.upsampling import upsample
from difflab.networks import build_network
from difflab.parameterization import Denoiser
from difflab.runs.checkpoint import latest_checkpoint, load_checkpoint
from difflab.runs.load import load_run
from difflab.runs.metrics import read_metrics
from difflab.schedules import make_schedule
from difflab.training.loop import train
from difflab.training.session import open_training_run

from .prior_fixtures import perturb

TINY = {"base_channels": 8, "norm_groups": 4}
RUN = [
    "model.options={base_channels: 8, norm_groups: 4}",
    "train.batch_size=4",
    "train.log_every=1",
    "train.sample_every=2",
    "train.val_every=2",
    "train.val_images=8",
    "train.checkpoint_every=2",
    "train.ema_start=1",
    "train.progress=false",
    "sample.steps=2",
    "sample.num=4",
]


def tiny_upsampler() -> torch.nn.Module:
    return build_network("upsampler", in_channels=1, image_size=16, num_classes=None, options=TINY)


def test_shapes_low_res_in_high_res_out():
    net = perturb(tiny_upsampler()).eval()
    x, low = torch.randn(3, 1, 16, 16), torch.rand(3, 1, 8, 8) * 2 - 1
    cond = Condition(hint=low, embedding=torch.tensor([[0.0], [0.3], [0.9]]))
    out = net(x, torch.tensor([1.0, 500.0, 999.0]), cond)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert net.unet.config.in_channels == 2  # the image and its low-resolution version
    other = Condition(hint=-low, embedding=cond.embedding)
    assert not torch.allclose(net(x, torch.tensor([1.0, 500.0, 999.0]), other), out, atol=1e-4)
    later = Condition(hint=low, embedding=cond.embedding + 0.05)  # the level is read too
    assert not torch.allclose(net(x, torch.tensor([1.0, 500.0, 999.0]), later), out, atol=1e-4)


def test_augmentation_level_zero_is_the_clean_low_res_input():
    images = torch.rand(4, 1, 16, 16) * 2 - 1
    low = low_res(images, 8)
    torch.testing.assert_close(low[0, 0, 0, 0], images[0, 0, :2, :2].mean())  # area average
    cond = low_res_condition(low, torch.zeros(4), torch.Generator().manual_seed(0))
    assert torch.equal(cond.hint, low)
    assert torch.equal(cond.embedding, torch.zeros(4, 1))
    eps = torch.randn_like(low)
    torch.testing.assert_close(noise_augment(low, torch.ones(4), eps), eps, atol=1e-6, rtol=0)
    half = noise_augment(low, torch.full((4,), 0.5), eps)
    torch.testing.assert_close(half, (low + eps) / 2**0.5, atol=1e-6, rtol=0)


def test_upsample_draws_images_of_the_network_size_per_seed():
    denoiser = Denoiser(perturb(tiny_upsampler()).eval(), make_schedule("cosine"), "v")
    low = torch.rand(3, 1, 8, 8) * 2 - 1
    sample = SampleConfig(sampler="ddim", steps=3)
    out = upsample(denoiser, low, seeds=[4, 5, 6], sample=sample, level=0.1, device="cpu")
    assert out.shape == (3, 1, 16, 16) and torch.isfinite(out).all()
    alone = upsample(denoiser, low[1:2], seeds=[5], sample=sample, level=0.1, device="cpu")
    torch.testing.assert_close(alone, out[1:2], rtol=1e-4, atol=1e-4)


def config(tmp_path: Path, *extra: str):
    return load_config("upsampler-digits", [*RUN, f"run.root={tmp_path}", *extra])


def losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir) if "loss" in r]


def test_training_batches_hold_the_augmented_low_res_images(tmp_path):
    run = open_training_run(config(tmp_path, "train.steps=1", "model.unclip.aug_max=0.0"))
    batch = run.data.micro_batch(0, torch.Generator().manual_seed(0))
    assert batch.x0.shape == (4, 1, 16, 16)
    assert torch.equal(batch.cond.hint, low_res(batch.x0, 8))  # level 0: the clean input
    assert torch.equal(batch.cond.embedding, torch.zeros(4, 1))
    run = open_training_run(config(tmp_path, "train.steps=1"))
    batch = run.data.micro_batch(0, torch.Generator().manual_seed(0))
    s = batch.cond.embedding[:, 0]
    assert ((s >= 0) & (s <= 0.5)).all() and len(set(s.tolist())) == 4
    assert not torch.equal(batch.cond.hint, low_res(batch.x0, 8))


def test_resume_gives_bit_identical_losses_and_weights(tmp_path):
    straight = train(config(tmp_path, "run.name=a", "train.steps=4"), tensorboard=False)
    first = train(config(tmp_path, "run.name=b", "train.steps=4"), tensorboard=False, stop_at=1)
    resumed = config(tmp_path, "run.name=b", "train.steps=4", f"train.resume={first}")
    assert train(resumed, tensorboard=False) == first
    assert len(losses(straight)) == 4 and losses(first) == losses(straight)
    a, b = (load_checkpoint(latest_checkpoint(run)) for run in (straight, first))
    for name in a.model:
        assert torch.equal(a.model[name], b.model[name]) and torch.equal(a.ema[name], b.ema[name])
    assert (straight / "samples" / "step-000004-ema.png").is_file()
    assert load_run(straight).image_shape == (1, 16, 16)


def test_bad_upsampler_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="model.unclip.aug_max"):
        config(tmp_path, "model.unclip.aug_max=1.5")
    with pytest.raises(ConfigError, match="model.class_conditional"):
        config(tmp_path, "model.class_conditional=true")
