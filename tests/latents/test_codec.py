"""The latent codecs: the scaling (and shift) factors are named fields applied exactly once on
each side, so a round trip through the codec is the VAE's own round trip whatever they are."""

from __future__ import annotations

import pytest
import torch

from difflab.core.errors import CheckpointError, ConfigError, DataError
from difflab.latents import IdentityCodec, VAECodec

from .tiny_vae import save_tiny_vae, tiny_vae

pytest.importorskip("diffusers", reason="the VAE codec needs diffusers (the sd extra)")


@pytest.fixture(scope="module")
def vae():
    return tiny_vae()


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, 16, 16, generator=g) * 2 - 1


def test_identity_codec_is_the_identity(images):
    codec = IdentityCodec()
    assert codec.encode(images) is images and codec.decode(images) is images
    assert codec.latent_shape((3, 16, 16)) == (3, 16, 16)


def test_encode_scales_the_posterior_mean_and_decode_undoes_it(vae, images):
    codec = VAECodec(vae, scaling_factor=0.25, shift_factor=0.1)
    mean = vae.encode(images).latent_dist.mean
    z = codec.encode(images)
    torch.testing.assert_close(z, (mean - 0.1) * 0.25)
    torch.testing.assert_close(codec.decode(z), vae.decode(mean).sample, rtol=1e-5, atol=1e-5)


def test_factors_default_to_the_vae_config(vae):
    codec = VAECodec(vae)
    assert codec.scaling_factor == 0.5 and codec.shift_factor == 0.0


@pytest.mark.parametrize("scale", [0.18215, 1.0, 3.0])
def test_round_trip_does_not_depend_on_the_scaling_factor(vae, images, scale):
    direct = vae.decode(vae.encode(images).latent_dist.mean).sample
    codec = VAECodec(vae, scaling_factor=scale)
    torch.testing.assert_close(codec.decode(codec.encode(images)), direct, rtol=1e-5, atol=1e-5)


def test_posterior_samples_follow_the_generator(vae, images):
    codec = VAECodec(vae, sample_posterior=True)
    a = codec.encode(images, generator=torch.Generator().manual_seed(3))
    b = codec.encode(images, generator=torch.Generator().manual_seed(3))
    mean = VAECodec(vae).encode(images)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, mean)


def test_latent_shape_and_a_shape_that_does_not_fit(vae):
    codec = VAECodec(vae)
    assert codec.latent_shape((3, 16, 16)) == (4, 8, 8)
    with pytest.raises(ConfigError, match="divisible by 2"):
        codec.latent_shape((3, 15, 16))
    with pytest.raises(ConfigError, match="3 channels"):
        codec.latent_shape((1, 16, 16))


def test_frozen(vae):
    codec = VAECodec(vae)
    assert not any(p.requires_grad for p in codec.parameters())


def test_loads_a_vae_folder_and_a_pipeline_folder(tmp_path, images):
    save_tiny_vae(tmp_path / "pipe" / "vae")
    expected = VAECodec(tiny_vae()).encode(images)
    for path in (tmp_path / "pipe", tmp_path / "pipe" / "vae"):
        torch.testing.assert_close(VAECodec.from_folder(path).encode(images), expected)


def test_missing_folder_and_missing_weights_are_named(tmp_path):
    with pytest.raises(DataError, match="VAE folder not found"):
        VAECodec.from_folder(tmp_path / "nowhere")
    folder = save_tiny_vae(tmp_path / "vae")
    (folder / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(DataError, match="diffusion_pytorch_model.safetensors"):
        VAECodec.from_folder(folder)


def test_truncated_weights_are_a_checkpoint_error(tmp_path):
    folder = save_tiny_vae(tmp_path / "vae")
    weights = folder / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=str(folder)):
        VAECodec.from_folder(folder)
