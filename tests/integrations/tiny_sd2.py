"""A tiny randomly initialised Stable Diffusion 2.x (768-v) pipeline folder, for tests.

SD 2.x differs from v1 where difflab could go wrong: its scheduler predicts v
(`prediction_type: v_prediction`); its text encoder is OpenCLIP-H's text tower saved as a
transformers `CLIPTextModel` (hidden_act "gelu", 23 of OpenCLIP-H's 24 layers: the penultimate
layer's output) whose tokenizer pads with "!" rather than the end token; its UNet uses linear
projections in its transformers, a head dimension per block, and a cross_attention_dim equal to
that text width. All at toy sizes, saved as tiny_sd.py saves v1.
"""

from __future__ import annotations

import json
from pathlib import Path

from latents.tiny_vae import tiny_vae

from .tiny_sd import SD_V1_SCHEDULER, _vocabulary, tiny_text_encoder, tiny_unet, write_tokenizer

TEXT_DIM = 48  # not v1's 32, so a v1 text encoder does not fit this UNet
TEXT_LAYERS = 23  # OpenCLIP-H's 24 layers less the last, as SD 2.x's text_encoder/ holds
SD_V2_SCHEDULER = {**SD_V1_SCHEDULER, "prediction_type": "v_prediction"}


def tiny_unet2():
    return tiny_unet(
        seed=11,
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=(2, 4),  # SD 2.x: [5, 10, 20, 20]
        use_linear_projection=True,
    )


def tiny_open_clip_text_encoder():
    vocab, _ = _vocabulary()
    return tiny_text_encoder(
        seed=12,
        hidden_size=TEXT_DIM,
        intermediate_size=96,
        num_hidden_layers=TEXT_LAYERS,
        hidden_act="gelu",  # OpenCLIP's (v1's CLIP: quick_gelu)
        pad_token_id=vocab["!"],
    )


def write_sd2_tokenizer(folder: Path) -> Path:
    """SD 2.x's tokenizer folder: v1's files, padding with "!"."""
    write_tokenizer(folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "pad_token": "!"}))
    return folder


def save_tiny_sd2(folder: Path) -> Path:
    """Write a tiny SD 2.x (v-prediction) pipeline folder in diffusers' layout; returns it."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from transformers import CLIPTokenizer

    work = folder.parent / f"{folder.name}-work" / "tokenizer"
    tokenizer = CLIPTokenizer.from_pretrained(write_sd2_tokenizer(work), local_files_only=True)
    pipe = StableDiffusionPipeline(
        vae=tiny_vae(scaling_factor=0.18215),
        text_encoder=tiny_open_clip_text_encoder(),
        tokenizer=tokenizer,
        unet=tiny_unet2(),
        scheduler=DDIMScheduler(**SD_V2_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
