"""data.channels=3: a latent run with an RGB VAE trains on the grey digits repeated to RGB, and
its evaluation scores RGB samples against the RGB reference; without the key the run stops
with one line naming it."""

import json

import pytest
import torch

from difflab.cli.main import main
from difflab.core.errors import ConfigError
from difflab.data import ToSymmetric, load_dataset
from difflab.data.dataset import with_channels
from difflab.latents import VAECodec
from difflab.training.loop import train
from difflab.training.session import open_training_run

from .conftest import latent_config
from .tiny_vae import save_tiny_vae


@pytest.fixture(scope="module")
def rgb_vae(tmp_path_factory):
    pytest.importorskip("diffusers", reason="the VAE codec needs diffusers (the sd extra)")
    return save_tiny_vae(tmp_path_factory.mktemp("weights") / "rgb-vae", in_channels=3)


def test_grey_digits_repeated_to_rgb_are_what_the_vae_encodes(tmp_path, rgb_vae):
    s = open_training_run(latent_config(tmp_path, rgb_vae, "data.channels=3"))
    grey = load_dataset("digits", split="train").images  # [N, 1, 8, 8]
    assert s.image_shape == (3, 8, 8)
    rgb = ToSymmetric()({"image": torch.cat([grey, grey, grey], dim=1)})["image"]
    torch.testing.assert_close(s.data.images, VAECodec.from_folder(rgb_vae).encode(rgb))


def test_without_the_key_the_run_names_it(tmp_path, rgb_vae):
    with pytest.raises(ConfigError, match=r"takes 3 channels .*; data.channels=3 repeats grey"):
        open_training_run(latent_config(tmp_path, rgb_vae))
    rgb = load_dataset("digits", channels=3)
    assert load_dataset("digits", channels=1).image_shape == (1, 8, 8)  # its own: unchanged
    with pytest.raises(ConfigError, match=r"data.channels=1: digits images have 3 channels"):
        with_channels(rgb, 1)


def test_an_rgb_latent_run_of_digits_is_evaluated_in_rgb(tmp_path, rgb_vae, capsys):
    run = train(latent_config(tmp_path, rgb_vae, "data.channels=3", "train.steps=1"),
                tensorboard=False)  # fmt: skip
    assert json.loads((run / "model.json").read_text())["in_channels"] == 3
    args = ["eval", str(run), "--num", "4", "--classifier-steps", "1"]
    assert main([*args, "--cache-dir", str(tmp_path / "cache")]) == 0
    result = json.loads((run / "eval" / "eval-step-000001.json").read_text())
    assert result["reference"] == "digits/test" and result["num_samples"] == 4
