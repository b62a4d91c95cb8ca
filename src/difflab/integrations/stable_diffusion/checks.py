"""The config keys a Stable Diffusion fine-tune needs, checked before anything runs: its
pretrained folder, COCO captions, text conditioning only, grid prompts for its sample grids,
no periodic work that needs labels or held-out images (the plug-in's `check_config`)."""

from __future__ import annotations

from difflab.config.build import require
from difflab.config.schema import Config, ModelConfig
from difflab.data.captioned import CAPTION_LAYOUTS
from difflab.integrations.stable_diffusion.network import SD_NETWORK


def check_config(c: Config) -> None:
    """ConfigError naming the first key of c a Stable Diffusion run cannot take."""
    m, t, d = c.model, c.train, c.data
    require(not m.options, "model.options", f"empty with model.network {SD_NETWORK!r}", m.options)
    require(not d.options, "data.options", "empty with model.pretrained", d.options)
    folder = f"a local diffusers Stable Diffusion folder with model.network {SD_NETWORK!r}"
    require(m.pretrained is not None, "model.pretrained", folder, None)
    require(d.root is not None, "data.root", "the COCO folder with model.pretrained", None)
    layouts = ["coco", *CAPTION_LAYOUTS]
    require(d.dataset in layouts, "data.dataset", f"one of {layouts}", d.dataset)
    require(d.image_size is not None, "data.image_size", "set with model.pretrained", None)
    require(d.num_workers >= 0, "data.num_workers", ">= 0", d.num_workers)
    for key, value, expected in [
        ("model.class_conditional", m.class_conditional, False),
        ("model.latent.vae", m.latent.vae, None),  # the pretrained folder's VAE
        ("model.controlnet.base_run", m.controlnet.base_run, None),
        ("data.val_split", d.val_split, None),
        ("train.eval_every", t.eval_every, 0),
    ]:
        require(value == expected, key, f"{expected!r} with model.pretrained", value)
    check_lora(m)
    require(
        t.sample_every == 0 or bool(c.sample.prompts),
        "sample.prompts",
        "at least one prompt with train.sample_every > 0 (or train.sample_every 0)",
        c.sample.prompts,
    )


def check_lora(m: ModelConfig) -> None:
    """A LoRA of the UNet: a rank (0: none), a positive alpha, named target modules; one of
    the text encoder only beside it."""
    lora = m.lora
    require(lora.rank >= 0, "model.lora.rank", ">= 0 (0: no LoRA)", lora.rank)
    with_rank = "false with model.lora.rank 0 (the text encoder's LoRA has the UNet's rank)"
    require(lora.rank > 0 or not lora.text_encoder, "model.lora.text_encoder", with_rank, True)
    if lora.rank == 0:
        return
    require(lora.alpha is None or lora.alpha > 0, "model.lora.alpha", "> 0 or null", lora.alpha)
    names = bool(lora.targets) and all(isinstance(t, str) and t for t in lora.targets)
    require(names, "model.lora.targets", "a non-empty list of module names", lora.targets)
