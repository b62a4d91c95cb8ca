"""Latent codecs: the map between images and the space the diffusion model works in.

`IdentityCodec` is pixel diffusion. `VAECodec` is latent diffusion (Rombach et al. 2022,
Sec. 3): the model works on z = (E(x) - shift_factor) * scaling_factor, where E is the mean
(or a sample) of a frozen KL autoencoder's posterior, and images come back as
D(z / scaling_factor + shift_factor). The two factors are named fields, never guessed: the
scaling factor makes the latents of the training data about unit variance (0.18215 for
Stable Diffusion v1), and nothing else (not the guidance scale) divides the latents.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor, nn

from difflab.core.errors import CheckpointError, ConfigError, DataError

if TYPE_CHECKING:
    from diffusers import AutoencoderKL

# The posterior sample's randomness: one generator for the batch, or one per row.
Generators = torch.Generator | list[torch.Generator] | None

VAE_CONFIG = "config.json"
VAE_WEIGHTS = "diffusion_pytorch_model.safetensors"


class Codec(Protocol):
    def encode(self, x: Tensor, *, generator: Generators = None) -> Tensor:
        """Images [N, C, H, W] in [-1, 1] -> latents [N, c, h, w]."""
        ...

    def decode(self, z: Tensor) -> Tensor:
        """Latents [N, c, h, w] -> images [N, C, H, W], about [-1, 1]."""
        ...

    def latent_shape(self, image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """(c, h, w) of the latents of images of shape (C, H, W)."""
        ...


class IdentityCodec:
    """Pixel diffusion: the latents are the images."""

    def encode(self, x: Tensor, *, generator: Generators = None) -> Tensor:
        return x

    def decode(self, z: Tensor) -> Tensor:
        return z

    def latent_shape(self, image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        return image_shape


class VAECodec(nn.Module):
    """A frozen diffusers `AutoencoderKL` as the codec of a latent diffusion model.

    scaling_factor and shift_factor default to the ones in the VAE's config; sample_posterior
    draws z from the posterior instead of taking its mean.
    """

    def __init__(
        self,
        vae: AutoencoderKL,
        *,
        scaling_factor: float | None = None,
        shift_factor: float | None = None,
        sample_posterior: bool = False,
    ) -> None:
        super().__init__()
        self.vae = vae.eval().requires_grad_(False)
        config_scale = vae.config.scaling_factor
        config_shift = getattr(vae.config, "shift_factor", None)
        self.scaling_factor = float(config_scale if scaling_factor is None else scaling_factor)
        self.shift_factor = float((config_shift or 0.0) if shift_factor is None else shift_factor)
        if self.scaling_factor <= 0:
            raise ConfigError(
                f"the VAE's scaling_factor must be positive, got {self.scaling_factor}"
            )
        self.sample_posterior = sample_posterior
        self.latent_channels = int(vae.config.latent_channels)
        self.downsample = 2 ** (len(vae.config.block_out_channels) - 1)

    @classmethod
    def from_folder(cls, path: str | Path, **fields) -> VAECodec:
        """The VAE of a local diffusers folder: a VAE folder (config.json and
        diffusion_pytorch_model.safetensors) or a pipeline folder holding one in vae/."""
        folder = _vae_folder(Path(path))
        diffusers = _import_diffusers()
        try:
            # low_cpu_mem_usage=False: the tiny saving it offers needs accelerate
            vae = diffusers.AutoencoderKL.from_pretrained(
                folder, local_files_only=True, use_safetensors=True, low_cpu_mem_usage=False
            )
        except (OSError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"cannot load the VAE in {folder}: {err}") from err
        return cls(vae, **fields)

    @torch.no_grad()
    def encode(self, x: Tensor, *, generator: Generators = None) -> Tensor:
        posterior = self.vae.encode(x.to(self.vae.dtype)).latent_dist
        e = posterior.sample(generator) if self.sample_posterior else posterior.mean
        return ((e.float() - self.shift_factor) * self.scaling_factor).contiguous()

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        e = z / self.scaling_factor + self.shift_factor
        return self.vae.decode(e.to(self.vae.dtype)).sample.float()

    def latent_shape(self, image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        c, h, w = image_shape
        f = self.downsample
        if c != self.vae.config.in_channels or h % f or w % f:
            grey = c == 1 and self.vae.config.in_channels == 3
            raise ConfigError(
                f"images of shape {(c, h, w)} do not fit the VAE: it takes "
                f"{self.vae.config.in_channels} channels and sides divisible by {f}"
                + ("; data.channels=3 repeats grey images to RGB" if grey else "")
            )
        return self.latent_channels, h // f, w // f


def _vae_folder(path: Path) -> Path:
    """path itself when it holds a VAE, else path/vae; DataError naming the missing file."""
    folder = path / "vae" if (path / "vae").is_dir() else path
    if not folder.is_dir():
        raise DataError(f"VAE folder not found: {folder}")
    for name in (VAE_CONFIG, VAE_WEIGHTS):
        if not (folder / name).is_file():
            raise DataError(f"the VAE folder {folder} has no {name}")
    return folder


def _import_diffusers():
    try:
        import diffusers  # optional heavy dependency (the `sd` extra)
    except ImportError as err:
        raise ConfigError("a VAE codec needs diffusers: pip install 'difflab[sd]'") from err
    return diffusers
