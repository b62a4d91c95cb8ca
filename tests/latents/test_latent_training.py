"""Training on latents: the split is encoded once into what the network sees, flips pick one
of two encoded orientations, and resume is exact."""

import json
import math

import pytest
import torch
from PIL import Image

from difflab.core.errors import ConfigError
from difflab.data import ToSymmetric, load_dataset
from difflab.latents import VAECodec
from difflab.runs.latents import ENCODE_BATCH
from difflab.runs.metrics import read_metrics
from difflab.training.loop import train
from difflab.training.session import open_training_run
from difflab.training.step import micro_batch_loss

from .conftest import latent_config


def _digits(split):
    return load_dataset("digits", split=split).images


def test_the_run_folder_records_images_latents_and_codec(latent_run, vae_folder):
    info = json.loads((latent_run / "model.json").read_text())
    assert (info["in_channels"], info["image_size"], info["latent_shape"]) == (1, 8, [4, 4, 4])
    assert info["latent"] == {
        "vae": str(vae_folder.resolve()),
        "scaling_factor": 0.5,  # the tiny VAE config's
        "shift_factor": 0.0,
        "sample_posterior": False,
    }
    losses = [r["loss"] for r in read_metrics(latent_run) if "loss" in r]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)


def test_sample_grids_are_decoded_images(latent_run):
    grid = Image.open(latent_run / "samples" / "step-000002-ema.png")
    # 4 images of 8x8 grey pixels (not 4x4x4 latents), 10 columns (one per class), 1 px pad
    assert grid.mode == "L" and grid.size == (10 * 9 + 1, 9 + 1)


@pytest.mark.parametrize("network", [[], ["model.network=dit-tiny", "model.options={}"]])
def test_the_network_is_built_for_and_sees_the_latents(tmp_path, vae_folder, network):
    s = open_training_run(latent_config(tmp_path, vae_folder, "train.batch_size=4", *network))
    assert s.image_shape == (1, 8, 8) and s.latent_shape == (4, 4, 4)
    x = ToSymmetric()({"image": _digits("train")})["image"]
    expected = VAECodec.from_folder(vae_folder).encode(x)
    torch.testing.assert_close(s.data.images, expected)
    seen = []
    s.state.model.register_forward_pre_hook(lambda _, args: seen.append(args[0].shape))
    g = torch.Generator().manual_seed(0)
    micro_batch_loss(s.state, s.data.micro_batch(0, g), g, 0.0)
    assert seen == [torch.Size([4, 4, 4, 4])]


def test_flips_pick_one_of_both_encoded_orientations(tmp_path, vae_folder):
    s = open_training_run(latent_config(tmp_path, vae_folder, "data.flip=true"))
    both = s.data.images  # [N, 2, c, h, w]
    x = ToSymmetric()({"image": _digits("train")})["image"]
    torch.testing.assert_close(both[:, 1], VAECodec.from_folder(vae_folder).encode(x.flip(-1)))
    index = torch.arange(16)
    batch = s.data.take(index, torch.Generator().manual_seed(3))
    flip = torch.rand(16, generator=torch.Generator().manual_seed(3)) < 0.5
    assert 0 < int(flip.sum()) < 16
    expected = torch.where(flip.view(-1, 1, 1, 1), both[index, 1], both[index, 0])
    assert torch.equal(batch.x0, expected)


def test_each_split_is_encoded_once(tmp_path, vae_folder, monkeypatch):
    from diffusers import AutoencoderKL

    calls = []
    encode = AutoencoderKL.encode
    monkeypatch.setattr(AutoencoderKL, "encode", lambda vae, x: calls.append(1) or encode(vae, x))
    every = ["train.steps=4", "train.val_every=2", "train.sample_every=2", "data.flip=true"]
    train(latent_config(tmp_path, vae_folder, *every), tensorboard=False)
    batches = [math.ceil(len(_digits(split)) / ENCODE_BATCH) for split in ("train", "test")]
    assert len(calls) == 2 * batches[0] + batches[1]  # train: both orientations


def test_resume_gives_the_losses_of_one_run(tmp_path, vae_folder):
    common = [
        "train.batch_size=4",
        "train.cond_dropout=0.5",
        "data.flip=true",
        "model.latent.sample_posterior=true",
        "train.steps=4",
    ]
    straight = train(latent_config(tmp_path, vae_folder, *common, "run.name=a"), tensorboard=False)
    config = latent_config(tmp_path, vae_folder, *common, "run.name=b", "train.checkpoint_every=5")
    first = train(config, tensorboard=False, stop_at=2)
    resumed = latent_config(tmp_path, vae_folder, *common, "run.name=b", f"train.resume={first}")
    train(resumed, tensorboard=False)

    def losses(run):
        return [r["loss"] for r in read_metrics(run) if "loss" in r]

    assert len(losses(straight)) == 4 and losses(first) == losses(straight)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.latent.scaling_factor=0", "model.latent.scaling_factor"),
        ("model.latent.sample_posterior=2", "model.latent.sample_posterior"),
    ],
)
def test_bad_latent_settings_name_their_key(tmp_path, vae_folder, override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        latent_config(tmp_path, vae_folder, override)
