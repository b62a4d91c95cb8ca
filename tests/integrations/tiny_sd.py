"""A tiny randomly initialised Stable Diffusion v1 pipeline folder, for tests.

The same components as SD v1 (a UNet2DConditionModel, an AutoencoderKL, a CLIP text model and
its BPE tokenizer, a DDIM scheduler configured as SD v1's) at toy sizes, saved in diffusers'
pipeline layout (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/) with
safetensors. Nothing downloads: the tokenizer is built from a hand-written vocabulary.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch

from latents.tiny_vae import tiny_vae

TEXT_DIM = 32
MAX_TOKENS = 77
LATENT_SIZE = 8  # latents 4 x 8 x 8; the tiny VAE downsamples by 2, so images are 16 x 16
IMAGE_SIZE = 16

# Scheduler settings of SD v1's published configs (DDIM form).
SD_V1_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="epsilon",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    timestep_spacing="leading",
)


def tiny_unet(seed: int = 1, **overrides):
    """SD v1's UNet at toy size; overrides replace its config's keys (SD 2.x's)."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    config = dict(
        sample_size=LATENT_SIZE,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    return UNet2DConditionModel(**{**config, **overrides}).eval()


def tiny_text_encoder(seed: int = 2, **overrides):
    """SD v1's CLIP text model at toy size; overrides replace its config's keys (SD 2.x's)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    vocab, _ = _vocabulary()
    torch.manual_seed(seed)
    config = dict(
        vocab_size=len(vocab),
        hidden_size=TEXT_DIM,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    return CLIPTextModel(CLIPTextConfig(**{**config, **overrides})).eval()


def _vocabulary() -> tuple[dict[str, int], list[str]]:
    """Byte-pair vocabulary of lower-case letters, digits and a few merges; CLIP's layout."""
    chars = list(string.ascii_lowercase + string.digits + ".,!?'")
    merges = ["a t</w>", "c a", "ca t</w>", "o n</w>"]
    tokens = chars + [c + "</w>" for c in chars] + [m.replace(" ", "") for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(tokens)}, merges


def write_tokenizer(folder: Path) -> Path:
    """vocab.json, merges.txt and tokenizer_config.json, as SD v1's tokenizer folder holds."""
    vocab, merges = _vocabulary()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("\n".join(["#version: 0.2", *merges]) + "\n")
    config = {"model_max_length": MAX_TOKENS, "tokenizer_class": "CLIPTokenizer"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def tiny_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(write_tokenizer(folder), local_files_only=True)


def tiny_pipeline(tmp: Path, **scheduler_overrides):
    """A StableDiffusionPipeline of tiny components (no safety checker)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=tiny_vae(scaling_factor=0.18215),
        text_encoder=tiny_text_encoder(),
        tokenizer=tiny_tokenizer(tmp / "tokenizer-source"),
        unet=tiny_unet(),
        scheduler=DDIMScheduler(**{**SD_V1_SCHEDULER, **scheduler_overrides}),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_tiny_sd(folder: Path, **scheduler_overrides) -> Path:
    """Write a tiny SD v1 pipeline folder in diffusers' layout; returns the folder."""
    pipe = tiny_pipeline(folder.parent / f"{folder.name}-work", **scheduler_overrides)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
