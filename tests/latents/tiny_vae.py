"""A tiny randomly initialised diffusers AutoencoderKL (2 levels: downsample 2), for tests."""

from __future__ import annotations

from pathlib import Path

import torch


def tiny_vae(in_channels: int = 3, latent_channels: int = 4, scaling_factor: float = 0.5):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(
        in_channels=in_channels,
        out_channels=in_channels,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=4,
        sample_size=16,
        scaling_factor=scaling_factor,
    ).eval()


def save_tiny_vae(folder: Path, **kwargs) -> Path:
    """Write a tiny VAE in diffusers' folder format (config.json + safetensors) to folder."""
    tiny_vae(**kwargs).save_pretrained(folder, safe_serialization=True)
    return folder
