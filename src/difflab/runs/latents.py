"""Latent diffusion data (Rombach et al. 2022): the codec a config names, its record in the run
folder, and a dataset split encoded once into latents that stay on the device.

The split is encoded when training starts, without gradients, in batches, after the
deterministic transforms (to [-1, 1], resize). A random flip cannot act on latents (the
latents of a mirrored image are not the mirrored latents), so with data.flip both
orientations of every image are encoded and each sample of a batch picks one
(RandomOrientation), one draw per sample as RandomHorizontalFlip makes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from difflab.config.schema import LatentConfig
from difflab.core.errors import ConfigError
from difflab.data import BatchTransform
from difflab.data.transforms import Batch
from difflab.latents import Codec, IdentityCodec, VAECodec

ENCODE_BATCH = 64  # images per encoder call


def build_codec(latent: LatentConfig, device: torch.device | str) -> Codec:
    """IdentityCodec for pixel diffusion (latent.vae None), else the frozen VAE in the local
    folder latent.vae, on device (DataError/CheckpointError naming a missing or bad folder)."""
    if latent.vae is None:
        return IdentityCodec()
    codec = VAECodec.from_folder(
        latent.vae,
        scaling_factor=latent.scaling_factor,
        shift_factor=latent.shift_factor,
        sample_posterior=latent.sample_posterior,
    )
    return codec.to(device)


def latent_shape_of(codec: Codec, image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """codec.latent_shape(image_shape); images the VAE cannot take are a ConfigError that
    also names data.image_size, the key that sets their size."""
    try:
        return codec.latent_shape(image_shape)
    except ConfigError as err:
        raise ConfigError(f"{err} (config key 'data.image_size' sets the images' size)") from err


def latent_record(
    latent: LatentConfig, codec: Codec, image_shape: tuple[int, int, int]
) -> dict[str, Any]:
    """What model.json keeps of a latent run ({} for a pixel run): "latent", the codec's
    settings as used (the VAE's absolute path, the factors resolved from its config), from
    which load_run rebuilds it, and "latent_shape", the (c, h, w) the network sees."""
    if not isinstance(codec, VAECodec):
        return {}
    used = LatentConfig(
        vae=str(Path(str(latent.vae)).resolve()),
        scaling_factor=codec.scaling_factor,
        shift_factor=codec.shift_factor,
        sample_posterior=codec.sample_posterior,
    )
    return {"latent": asdict(used), "latent_shape": list(codec.latent_shape(image_shape))}


def recorded_latent(info: dict[str, Any]) -> LatentConfig:
    """The LatentConfig a run's model.json records (pixel diffusion when it records none)."""
    return LatentConfig(**info["latent"]) if "latent" in info else LatentConfig()


@torch.no_grad()
def encode_split(
    codec: Codec,
    images: Tensor,
    transform: BatchTransform,
    *,
    both_orientations: bool,
    generator: torch.Generator | None,
    device: torch.device,
) -> Tensor:
    """Latents of uint8 images [N, C, H, W] after `transform` (deterministic), on device:
    [N, c, h, w], or [N, 2, c, h, w] with both_orientations (index 1: the mirrored image's)."""
    chunks = []
    for start in range(0, images.shape[0], ENCODE_BATCH):
        x = transform({"image": images[start : start + ENCODE_BATCH].to(device)})["image"]
        z = codec.encode(x, generator=generator)
        if both_orientations:
            mirrored = codec.encode(x.flip(-1), generator=generator)
            z = torch.stack([z, mirrored], dim=1)  # [B, 2, c, h, w]
        chunks.append(z)
    return torch.cat(chunks)


@dataclass(frozen=True)
class RandomOrientation:
    """The flip of encoded data: batch["image"] [N, 2, c, h, w] -> [N, c, h, w], each sample
    taking its mirrored image's latents with probability p (and its batch["hint"] mirrored)."""

    p: float = 0.5

    def __call__(self, batch: Batch, *, generator: torch.Generator | None = None) -> Batch:
        both = batch["image"]
        device = generator.device if generator is not None else both.device
        flip = torch.rand(both.shape[0], generator=generator, device=device) < self.p
        flip = flip.to(both.device).view(-1, 1, 1, 1)  # [N, 1, 1, 1]
        out = {**batch, "image": torch.where(flip, both[:, 1], both[:, 0])}
        if "hint" in batch:
            out["hint"] = torch.where(flip, batch["hint"].flip(-1), batch["hint"])
        return out
