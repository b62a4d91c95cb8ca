"""Stable Diffusion 2.x on tiny random components (tiny_sd2.py): its OpenCLIP-style text encoder
gives the pipeline's prompt embeddings, a run of its v-prediction folder trains on the v target
diffusers defines and samples the pipeline's latents, the prediction type override still works,
and a folder whose text encoder the UNet cannot attend to is refused naming both files."""

from __future__ import annotations

import shutil

import pytest
import torch

from difflab.core.errors import ConfigError
from difflab.integrations.stable_diffusion import (
    TextEncoder,
    export_run,
    read_scheduler,
)
from difflab.integrations.stable_diffusion.session import open_sd_session
from difflab.runs.load import load_run
from difflab.training.loop import train
from difflab.training.step import micro_batch_loss

from .sd_compare import folder_and_pipeline_latents
from .test_sd_training import coco, losses, sd_config  # noqa: F401  (coco: a fixture)
from .tiny_sd import LATENT_SIZE

diffusers = pytest.importorskip("diffusers")

PROMPTS = ["a cat on a mat", "two dogs"]
V = ("model.parameterization=v",)


@pytest.fixture(scope="module")
def pipe(sd2_folder):
    return diffusers.StableDiffusionPipeline.from_pretrained(sd2_folder, local_files_only=True)


def test_the_folder_is_sd2_like(sd2_folder, pipe):
    """What the rest of this file relies on: v-prediction, an OpenCLIP-H-style text encoder
    padded with "!", a linear-projection UNet attending to that text width."""
    assert read_scheduler(sd2_folder).parameterization == "v"
    text = pipe.text_encoder.config
    assert (text.hidden_act, text.num_hidden_layers) == ("gelu", 23)
    assert pipe.tokenizer.pad_token == "!" and pipe.tokenizer.pad_token != pipe.tokenizer.eos_token
    unet = pipe.unet.config
    assert unet.use_linear_projection and isinstance(unet.attention_head_dim, (list, tuple))
    assert unet.cross_attention_dim == text.hidden_size


def test_text_and_null_text_are_the_pipelines_prompt_embeddings(sd2_folder, pipe):
    text = TextEncoder.from_folder(sd2_folder)
    cond_emb, null_emb = pipe.encode_prompt(PROMPTS, "cpu", 1, True)
    torch.testing.assert_close(text.encode(PROMPTS), cond_emb, rtol=0, atol=0)
    torch.testing.assert_close(text.null_text.expand_as(null_emb), null_emb, rtol=0, atol=0)


@pytest.mark.parametrize("guidance", [1.0, 7.5])
def test_ddim_on_the_v_folder_gives_the_pipelines_latents(sd2_folder, pipe, guidance):
    """The same float32 UNet and text encoder on both sides; difflab's alpha table is float64
    and diffusers' float32, so 10 steps differ by ~1e-6. Reading v as eps (or x0) changes
    every step's x0 estimate by O(1)."""
    args = dict(guidance=guidance, steps=10)
    ours, theirs, noise = folder_and_pipeline_latents(
        sd2_folder, pipe, PROMPTS, LATENT_SIZE, **args
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(ours, noise, atol=1e-2)


def test_the_loss_is_the_unets_error_on_diffusers_velocity(sd2_folder, coco, tmp_path):  # noqa: F811
    """One micro-batch's loss, rebuilt by hand from the same t and eps draws: the UNet's
    squared error on v = alpha_t eps - sigma_t x0 as diffusers' scheduler computes it
    (get_velocity, from the folder's own alphas_cumprod)."""
    s = open_sd_session(sd_config(sd2_folder, coco, tmp_path, *V))
    batch = s.data.micro_batch(0, torch.Generator().manual_seed(0))
    with torch.no_grad():
        loss = micro_batch_loss(s.state, batch, torch.Generator().manual_seed(1), 0.0)
        g = torch.Generator().manual_seed(1)  # the draws micro_batch_loss makes, in its order
        t = torch.randint(0, 1000, (len(batch.x0),), generator=g)
        eps = torch.randn(batch.x0.shape, generator=g)
        scheduler = diffusers.DDIMScheduler.from_pretrained(sd2_folder / "scheduler")
        x_t = scheduler.add_noise(batch.x0, eps, t)
        v = scheduler.get_velocity(batch.x0, eps, t)
        unet = s.denoiser.network.unet
        output = unet(x_t, t, encoder_hidden_states=batch.cond.text).sample
        expected = (output - v).square().mean()
        as_eps = (output - eps).square().mean()
    # float32 alphas (diffusers) against float64 (difflab): ~1e-7 relative
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=0)
    assert not torch.isclose(loss, as_eps, rtol=1e-2)


def test_a_v_run_trains_exports_and_samples_v(sd2_folder, coco, tmp_path):  # noqa: F811
    run = train(sd_config(sd2_folder, coco, tmp_path, *V, "train.steps=2"), tensorboard=False)
    assert len(losses(run)) == 2 and all(torch.isfinite(torch.tensor(losses(run))))
    assert load_run(run).denoiser.parameterization == "v"
    scheduler = diffusers.DDIMScheduler.from_pretrained(export_run(run) / "scheduler")
    assert scheduler.config.prediction_type == "v_prediction"


def test_the_folders_v_is_required_or_overridden(sd2_folder, coco, tmp_path):  # noqa: F811
    with pytest.raises(
        ConfigError,
        match=r"'model.parameterization' is 'eps' but .*sd2/scheduler says 'v' "
        r"\(set model.parameterization=v\)",
    ):
        open_sd_session(sd_config(sd2_folder, coco, tmp_path / "a"))
    assert not (tmp_path / "a").exists()
    override = ("model.override_prediction_type=true", "train.steps=1")
    run = train(sd_config(sd2_folder, coco, tmp_path / "b", *override), tensorboard=False)
    assert load_run(run).denoiser.parameterization == "eps"
    scheduler = diffusers.DDIMScheduler.from_pretrained(export_run(run) / "scheduler")
    assert scheduler.config.prediction_type == "epsilon"


def test_a_text_encoder_the_unet_cannot_attend_to_is_refused(
    sd_folder,
    sd2_folder,
    coco,  # noqa: F811
    tmp_path,
):
    """SD 2.x's UNet (cross_attention_dim 48 here, 1024 in SD 2.x) with SD v1's text encoder
    (width 32 here, 768 in SD v1): one line naming both config files, before anything runs."""
    mixed = shutil.copytree(sd2_folder, tmp_path / "mixed")
    shutil.rmtree(mixed / "text_encoder")
    shutil.copytree(sd_folder / "text_encoder", mixed / "text_encoder")
    runs = tmp_path / "runs"
    runs.mkdir()
    with pytest.raises(ConfigError) as err:
        open_sd_session(sd_config(mixed, coco, runs, *V))
    message = str(err.value)
    assert "\n" not in message
    assert f"{mixed / 'unet' / 'config.json'}: cross_attention_dim 48" in message
    assert f"{mixed / 'text_encoder' / 'config.json'}: hidden_size 32" in message
    assert not any(runs.iterdir())
