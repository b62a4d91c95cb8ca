"""A ControlNet on Stable Diffusion (model.network sd-controlnet) gives diffusers' answers with
the same weights, on tiny random components: the residuals fed to the UNet are diffusers'
ControlNetModel's, DDIM with guidance gives StableDiffusionControlNetPipeline's latents, and the
exported folder loads in diffusers."""

from __future__ import annotations

import pytest
import torch

from difflab.conditioning import Condition
from difflab.config.schema import ControlNetConfig, SampleConfig
from difflab.integrations.stable_diffusion import (
    TextEncoder,
    diffusers_ddim_times,
    load_unet,
    read_scheduler,
)
from difflab.integrations.stable_diffusion import sampling as sd_sampling
from difflab.integrations.stable_diffusion.controlnet import (
    SDControlledUNet,
    control_image,
    sd_controlnet_network,
)
from difflab.parameterization import Denoiser
from difflab.samplers import StackedGenerator

from .tiny_sd import IMAGE_SIZE, LATENT_SIZE, TEXT_DIM

diffusers = pytest.importorskip("diffusers")

PROMPTS = ["a cat on a mat", "two dogs"]


def randomised(network: SDControlledUNet, seed: int = 5) -> SDControlledUNet:
    """network with every ControlNet weight redrawn (the zero convolutions too), so that its
    residuals are not zero and a wrong input or scale shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in network.controlnet.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return network


@pytest.fixture(scope="module")
def network(sd_folder):
    torch.manual_seed(0)
    return randomised(sd_controlnet_network(sd_folder, 4, ControlNetConfig(hint="blur"))).eval()


def hints(n: int, channels: int = 3, seed: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, IMAGE_SIZE, IMAGE_SIZE, generator=g) * 2 - 1


def test_the_controlnet_starts_as_diffusers_from_unet(network, sd_folder):
    fresh = sd_controlnet_network(sd_folder, 4, ControlNetConfig())
    unet = load_unet(sd_folder)
    theirs = diffusers.ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32))
    for key, value in theirs.state_dict().items():
        if "controlnet_cond_embedding.blocks" in key or "cond_embedding.conv_in" in key:
            continue  # drawn from the RNG
        assert torch.equal(fresh.controlnet.state_dict()[key], value), key
    x = torch.randn(1, 4, LATENT_SIZE, LATENT_SIZE)
    cond = Condition(text=torch.randn(1, 77, TEXT_DIM), hint=hints(1))
    with torch.no_grad():  # zero convolutions: the base UNet exactly
        torch.testing.assert_close(fresh(x, torch.tensor([500.0]), cond),
                                   unet(x, 500, cond.text).sample, rtol=0, atol=0)  # fmt: skip


@pytest.mark.parametrize(("scale", "channels"), [(1.0, 3), (0.5, 1)])
def test_residuals_fed_to_the_unet_are_diffusers_controlnets(network, scale, channels):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, LATENT_SIZE, LATENT_SIZE, generator=g)
    text = torch.randn(2, 77, TEXT_DIM, generator=g)
    hint, t = hints(2, channels), torch.tensor([981.0, 1.0])
    fed = {}
    hook = network.unet.register_forward_pre_hook(
        lambda _, args, kwargs: fed.update(kwargs), with_kwargs=True
    )
    network.scale = scale
    try:
        with torch.no_grad():
            ours = network(x, t, Condition(text=text, hint=hint))
    finally:
        hook.remove()
        network.scale = 1.0
    theirs_net = diffusers.ControlNetModel.from_config(network.controlnet.config)
    theirs_net.load_state_dict(network.controlnet.state_dict())
    image = ((hint + 1) / 2).expand(-1, 3, -1, -1)  # the pipeline's RGB control image in [0, 1]
    with torch.no_grad():
        down, mid = theirs_net(x, t, text, image, conditioning_scale=scale, return_dict=False)
        unet_out = network.unet(x, t, text, down_block_additional_residuals=down,
                                mid_block_additional_residual=mid).sample  # fmt: skip
    assert len(fed["down_block_additional_residuals"]) == len(down)
    for a, b in zip(fed["down_block_additional_residuals"], down, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(fed["mid_block_additional_residual"], mid, rtol=0, atol=0)
    torch.testing.assert_close(ours, unet_out, rtol=0, atol=0)
    assert mid.abs().mean() > 1e-3  # the residuals are not trivially zero


def test_control_image_is_the_hint_in_zero_one_as_rgb():
    hint = torch.tensor([-1.0, 0.0, 1.0]).view(1, 1, 1, 3)
    image = control_image(hint)
    assert image.shape == (1, 3, 1, 3)
    assert image[0, :, 0].tolist() == [[0.0, 0.5, 1.0]] * 3


@pytest.mark.parametrize("guidance", [1.0, 7.5])
def test_sampling_gives_the_controlnet_pipelines_latents(sd_folder, network, guidance, monkeypatch):
    """sample_text_latents on diffusers' DDIM grid (the grid itself is tested against diffusers
    in test_sd_diffusers_equivalence.py), the hint in both branches of guidance."""
    settings = read_scheduler(sd_folder)
    steps = 6
    monkeypatch.setattr(sd_sampling, "grid_times", lambda *_: diffusers_ddim_times(settings, steps))
    denoiser = Denoiser(network, settings.make_schedule(), settings.parameterization)
    text = TextEncoder.from_folder(sd_folder)
    hint = hints(2)
    sample = SampleConfig(sampler="ddim", steps=steps, guidance=guidance)
    seeds = [0, 1]
    ours = sd_sampling.sample_text_latents(
        denoiser, text, PROMPTS, seeds=seeds, latent_shape=(4, LATENT_SIZE, LATENT_SIZE),
        sample=sample, device="cpu", hints=hint,
    )  # fmt: skip
    start = StackedGenerator(seeds, "cpu").randn((2, 4, LATENT_SIZE, LATENT_SIZE), device="cpu")
    pipe = diffusers.StableDiffusionControlNetPipeline.from_pretrained(
        sd_folder, controlnet=network.controlnet, local_files_only=True, safety_checker=None
    )
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(
        PROMPTS,
        image=(hint + 1) / 2,
        num_inference_steps=steps,
        guidance_scale=guidance,
        latents=start.clone(),
        output_type="latent",
    ).images
    # Same weights and operations; the pipeline runs both guidance branches as one batch of 4,
    # difflab as it batches them: float32 rounding apart (1e-6), far below a hint's effect.
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(ours, start, atol=1e-2)
