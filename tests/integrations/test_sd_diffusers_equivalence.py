"""difflab's pieces on a Stable Diffusion folder give diffusers' own answers: the wrapped UNet
its output, the schedule its alphas_cumprod, the DDIM grid its timesteps, and DDIM with
classifier-free guidance its pipeline's latents from the same initial noise."""

from __future__ import annotations

import pytest
import torch

from difflab.conditioning import Condition
from difflab.core.errors import ConfigError
from difflab.integrations.stable_diffusion import (
    SDUNet,
    TextEncoder,
    diffusers_ddim_times,
    load_unet,
    read_scheduler,
    scheduler_settings,
)

from .sd_compare import folder_and_pipeline_latents
from .tiny_sd import LATENT_SIZE, SD_V1_SCHEDULER, TEXT_DIM

diffusers = pytest.importorskip("diffusers")

PROMPTS = ["a cat on a mat", "two dogs"]


@pytest.fixture(scope="module")
def pipe(sd_folder):
    return diffusers.StableDiffusionPipeline.from_pretrained(sd_folder, local_files_only=True)


@pytest.fixture(scope="module")
def text(sd_folder):
    return TextEncoder.from_folder(sd_folder)


def test_wrapped_unet_equals_the_diffusers_unet(sd_folder, pipe):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, LATENT_SIZE, LATENT_SIZE, generator=g)
    context = torch.randn(2, 77, TEXT_DIM, generator=g)
    t = torch.tensor([981, 1])
    with torch.no_grad():
        ours = SDUNet(load_unet(sd_folder))(x, t.float(), Condition(text=context))
        theirs = pipe.unet(x, t, encoder_hidden_states=context).sample
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_text_and_null_text_are_the_pipelines_prompt_embeddings(text, pipe):
    cond_emb, null_emb = pipe.encode_prompt(PROMPTS, "cpu", 1, True)
    torch.testing.assert_close(text.encode(PROMPTS), cond_emb)
    torch.testing.assert_close(text.null_text.expand_as(null_emb), null_emb)
    assert not torch.equal(text.null_text, torch.zeros_like(text.null_text))


def test_sd_v1_schedule_is_difflabs_scaled_linear(sd_folder):
    settings = read_scheduler(sd_folder)
    assert (settings.schedule, settings.parameterization) == ("scaled-linear", "eps")
    ours = settings.make_schedule().alpha_bar(torch.arange(1000.0))
    theirs = diffusers.DDIMScheduler.from_pretrained(sd_folder / "scheduler").alphas_cumprod
    # diffusers builds its table in float32, difflab in float64.
    torch.testing.assert_close(ours.float(), theirs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    ("beta_schedule", "betas", "T"),
    [
        ("linear", (1e-4, 0.02), 1000),
        ("linear", (2e-4, 0.04), 500),
        ("squaredcos_cap_v2", (0, 0), 1000),
    ],
)
def test_other_beta_schedules_match_diffusers(beta_schedule, betas, T):
    config = dict(beta_schedule=beta_schedule, beta_start=betas[0], beta_end=betas[1])
    config["num_train_timesteps"] = T
    ours = scheduler_settings(config).make_schedule().alpha_bar(torch.arange(float(T)))
    theirs = diffusers.DDIMScheduler(**config).alphas_cumprod
    torch.testing.assert_close(ours.float(), theirs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("steps", [1, 7, 10, 50])
@pytest.mark.parametrize(
    "overrides",
    [{}, {"set_alpha_to_one": True}, {"timestep_spacing": "trailing", "steps_offset": 0}],
)
def test_ddim_grid_is_diffusers_timesteps_then_its_final_level(steps, overrides):
    config = {**SD_V1_SCHEDULER, **overrides}
    if config["timestep_spacing"] == "trailing" and 1000 % steps:
        with pytest.raises(ConfigError, match="does not step between its own timesteps"):
            diffusers_ddim_times(scheduler_settings(config), steps)
        return
    scheduler = diffusers.DDIMScheduler(**config)
    scheduler.set_timesteps(steps)
    grid = diffusers_ddim_times(scheduler_settings(config), steps)
    assert grid[:-1].tolist() == scheduler.timesteps.tolist()
    schedule = scheduler_settings(config).make_schedule()
    final = schedule.alpha_bar(grid[-1:]).float()
    torch.testing.assert_close(final, scheduler.final_alpha_cumprod.reshape(1))


@pytest.mark.parametrize("guidance", [1.0, 7.5])
def test_ddim_with_guidance_gives_the_pipelines_latents(sd_folder, pipe, guidance):
    args = dict(guidance=guidance, steps=10)
    ours, theirs, noise = folder_and_pipeline_latents(sd_folder, pipe, PROMPTS, LATENT_SIZE, **args)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(ours, noise, atol=1e-2)
