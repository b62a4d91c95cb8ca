"""Latent codecs: identity for pixel models, a VAE for latent diffusion."""

from difflab.latents.codec import Codec, IdentityCodec, VAECodec

__all__ = ["Codec", "IdentityCodec", "VAECodec"]
