"""LoRA of the CLIP text encoder beside the UNet's (model.lora.text_encoder), on tiny
components: only the two adapters train, the checkpoint moves them alone, resume repeats the
losses, and the exported pytorch_lora_weights.safetensors (text encoder keys under
`text_encoder.`) loaded into diffusers' pipeline gives difflab's latents from the same noise."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from difflab.config.recipes import load_config
from difflab.core.errors import ConfigError
from difflab.integrations.stable_diffusion import export_run, load_clip, read_scheduler
from difflab.integrations.stable_diffusion.lora import LORA_FILE
from difflab.integrations.stable_diffusion.session import open_sd_session
from difflab.integrations.stable_diffusion.text import CaptionTokens, tokenize
from difflab.runs.checkpoint import load_latest_checkpoint
from difflab.runs.load import load_run
from difflab.training.loop import train

from .sd_compare import difflab_ddim, pipeline_latents
from .test_sd_lora import LORA, PROMPTS, assert_sample_prompt_draws_the_pipelines_images, pipeline
from .test_sd_training import coco, losses, sd_config  # noqa: F401  (coco: a fixture)
from .tiny_sd import LATENT_SIZE

diffusers = pytest.importorskip("diffusers")
pytest.importorskip("peft")

TEXT_LORA = [*LORA, "model.lora.text_encoder=true"]
PROJECTIONS = (".q_proj", ".k_proj", ".v_proj", ".out_proj")
TEXT_LAYERS = 2  # tiny_sd's text encoder


@pytest.fixture(scope="module")
def run_dir(sd_folder, coco, tmp_path_factory):  # noqa: F811
    config = sd_config(sd_folder, coco, tmp_path_factory.mktemp("te-lora-run"), *TEXT_LORA)
    return train(config, tensorboard=False)


def test_only_the_two_adapters_train(sd_folder, coco, tmp_path):  # noqa: F811
    s = open_sd_session(sd_config(sd_folder, coco, tmp_path, *TEXT_LORA))
    network = s.denoiser.network
    trained = {id(p) for group in s.state.optimizer.param_groups for p in group["params"]}
    assert trained == {id(p) for name, p in network.named_parameters() if ".lora_" in name}
    adapted = [
        m
        for n, m in network.text_encoder.named_modules()
        if n.endswith(PROJECTIONS) and hasattr(m, "lora_A")
    ]
    assert len(adapted) == 4 * TEXT_LAYERS
    text_adapter = [p for n, p in network.text_encoder.named_parameters() if ".lora_" in n]
    assert text_adapter and all(id(p) in trained for p in text_adapter)
    # the data gives token ids, caption dropout the empty prompt's, for the network to encode
    batch = s.data.micro_batch(0, torch.Generator().manual_seed(0))
    assert batch.cond.text.dtype == torch.long and batch.cond.text.shape == (2, 77)
    tokenizer = s.data.text.tokenizer
    assert torch.equal(s.state.null_text, tokenize(tokenizer, [""]))


def test_the_checkpoint_moves_the_text_encoders_adapter_only(sd_folder, run_dir):
    """The checkpoint holds the two adapters alone; the loaded run's text encoder is the
    pretrained one under its adapter."""
    ckpt = load_latest_checkpoint(run_dir)
    assert all(".lora_" in k for k in ckpt.model)
    text = {
        k.removeprefix("text_encoder."): v
        for k, v in ckpt.model.items()
        if k.startswith("text_encoder.")
    }
    ups = [v for k, v in text.items() if ".lora_B." in k]
    assert len(ups) == 4 * TEXT_LAYERS and all(v.abs().max() > 0 for v in ups)
    moments = ckpt.state["optimizer"]["state"]
    assert all(".lora_" in name for name in moments)
    assert sum(name.startswith("text_encoder.") for name in moments) == 2 * 4 * TEXT_LAYERS
    pretrained = load_clip(sd_folder)[1].state_dict()
    loaded = load_run(run_dir).denoiser.network.text_encoder.state_dict()
    base = {k.replace(".base_layer", ""): v for k, v in loaded.items() if ".lora_" not in k}
    assert base.keys() == pretrained.keys()
    assert all(torch.equal(v, pretrained[k]) for k, v in base.items())


def test_resume_repeats_the_losses(sd_folder, coco, tmp_path):  # noqa: F811
    straight = train(sd_config(sd_folder, coco, tmp_path / "a", *TEXT_LORA), tensorboard=False)
    config = sd_config(sd_folder, coco, tmp_path / "b", *TEXT_LORA)
    stopped = train(config, tensorboard=False, stop_at=2)
    config.train.resume = str(stopped)
    resumed = train(config, tensorboard=False)
    assert len(losses(straight)) == 4
    assert losses(resumed) == losses(straight)


def test_the_exported_file_in_diffusers_gives_difflabs_latents(sd_folder, run_dir):
    """DDIM with guidance 7.5 on SD v1's grid: the pipeline with the run's two adapters
    loaded (load_lora_weights), the prompt and the empty prompt encoded by its adapted text
    encoder, against difflab's sampler on the run's EMA network, same noise (tolerance as
    test_sd_lora's: the same float32 modules, float64 against float32 alphas)."""
    out = export_run(run_dir)
    with safe_open(out / LORA_FILE, "pt") as f:
        keys = list(f.keys())
    text_keys = [k for k in keys if k.startswith("text_encoder.")]
    assert all(k.startswith("text_encoder.text_model.encoder.layers.") for k in text_keys)
    assert len(text_keys) == 2 * 4 * TEXT_LAYERS  # down and up of each projection
    assert len(keys) - len(text_keys) == 2 * 32 and all(
        k.startswith(("unet.", "text_encoder.")) for k in keys
    )
    tokens = CaptionTokens(load_clip(sd_folder)[0])
    noise = torch.randn(2, 4, LATENT_SIZE, LATENT_SIZE, generator=torch.Generator().manual_seed(3))
    args = dict(guidance=7.5, steps=10)
    denoiser = load_run(run_dir).denoiser
    ours = difflab_ddim(denoiser, tokens, read_scheduler(sd_folder), PROMPTS, noise, **args)
    pipe = pipeline(sd_folder, out)
    theirs = pipeline_latents(pipe, PROMPTS, noise, **args)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    # the text encoder's adapter matters: the pipeline's prompt embeddings moved
    ids = tokenize(pipe.tokenizer, PROMPTS)
    with torch.no_grad():
        moved = pipe.text_encoder(ids)[0] - load_clip(sd_folder)[1](ids)[0]
    assert moved.abs().max() > 1e-3


def test_sample_prompt_on_the_run_draws_the_pipelines_images(sd_folder, run_dir, tmp_path):
    """`difflab sample --prompt` tokenizes for the run's own text encoder (CaptionTokens)."""
    assert_sample_prompt_draws_the_pipelines_images(sd_folder, run_dir, tmp_path)


def test_a_text_encoder_lora_needs_the_unets():
    sd = ["model.pretrained=sd", "data.root=coco", "model.lora.text_encoder=true"]
    with pytest.raises(ConfigError, match="'model.lora.text_encoder' must be false with model"):
        load_config("sd-v1-4-coco", sd)
    with pytest.raises(ConfigError, match="'model.lora.text_encoder' must be false without"):
        load_config("digits", ["model.lora.text_encoder=true"])
