"""A 1-channel tiny VAE for the 8x8 digits (latents 4 x 4 x 4) and one short latent run."""

from pathlib import Path

import pytest

from difflab.config.recipes import load_config
from difflab.training.loop import train

from .tiny_vae import save_tiny_vae

TINY = str(Path(__file__).resolve().parents[1] / "training" / "tiny.yaml")


@pytest.fixture(scope="session")
def vae_folder(tmp_path_factory) -> Path:
    pytest.importorskip("diffusers", reason="the VAE codec needs diffusers (the sd extra)")
    return save_tiny_vae(tmp_path_factory.mktemp("weights") / "vae", in_channels=1)


def latent_config(root: Path, vae: Path, *overrides: str):
    """tiny.yaml on the digits' latents under root, without periodic grids or validation."""
    common = [f"run.root={root}", f"model.latent.vae={vae}", "train.sample_every=0"]
    return load_config(TINY, [*common, "train.val_every=0", *overrides])


@pytest.fixture(scope="session")
def latent_run(tmp_path_factory, vae_folder) -> Path:
    """A class-conditional run of 2 steps on the digits' latents, grids at step 2."""
    root = tmp_path_factory.mktemp("runs")
    return train(
        latent_config(root, vae_folder, "train.steps=2", "train.sample_every=2"), tensorboard=False
    )
