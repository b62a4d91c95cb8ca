"""Reading a Stable Diffusion folder: a missing part, an unreadable file, a scheduler difflab
cannot reproduce and a missing extra each give one error that names what is wrong."""

from __future__ import annotations

import json
import logging
import shutil
import sys

import pytest

from difflab.core.errors import CheckpointError, ConfigError, DataError
from difflab.integrations.stable_diffusion import (
    TextEncoder,
    diffusers_ddim_times,
    load_unet,
    read_scheduler,
    scheduler_settings,
)

from .tiny_sd import SD_V1_SCHEDULER


@pytest.fixture
def copy(sd_folder, tmp_path):
    return shutil.copytree(sd_folder, tmp_path / "sd")


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="not found: .*nowhere.*model.pretrained"):
        load_unet(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("removed", "load", "named"),
    [
        ("unet", load_unet, "no unet/ folder"),
        ("unet/diffusion_pytorch_model.safetensors", load_unet, "no diffusion_pytorch_model"),
        ("text_encoder/model.safetensors", TextEncoder.from_folder, "no model.safetensors"),
        ("tokenizer", TextEncoder.from_folder, "no tokenizer/ folder"),
        ("scheduler/scheduler_config.json", read_scheduler, "no scheduler_config.json"),
    ],
)
def test_missing_part_is_named(copy, removed, load, named):
    path = copy / removed
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    with pytest.raises(DataError, match=named):
        load(copy)


def test_unreadable_weights_are_a_checkpoint_error(copy):
    (copy / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="cannot load the UNet in .*unet"):
        load_unet(copy)


def test_v_prediction_is_difflabs_v():
    settings = scheduler_settings({**SD_V1_SCHEDULER, "prediction_type": "v_prediction"})
    assert settings.parameterization == "v"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("beta_end", 0.02),
        ("beta_schedule", "sigmoid"),
        ("prediction_type", "sample"),
        ("trained_betas", [0.1, 0.2]),
        ("timestep_spacing", "karras"),
    ],
)
def test_irreproducible_scheduler_is_refused_by_key(key, value):
    with pytest.raises(ConfigError, match=f"key '{key}'"):
        scheduler_settings({**SD_V1_SCHEDULER, key: value})


def test_scheduler_config_read_from_the_folder_is_checked(copy):
    file = copy / "scheduler" / "scheduler_config.json"
    file.write_text(json.dumps({**json.loads(file.read_text()), "beta_start": 0.001}))
    with pytest.raises(ConfigError, match="scheduler_config.json: key 'beta_start'"):
        read_scheduler(copy)


def test_ddim_grid_refuses_spacings_diffusers_steps_wrongly():
    settings = scheduler_settings({**SD_V1_SCHEDULER, "timestep_spacing": "linspace"})
    with pytest.raises(ConfigError, match="linspace"):
        diffusers_ddim_times(settings, 10)


@pytest.mark.parametrize("library", ["diffusers", "transformers"])
def test_missing_extra_says_what_to_install(sd_folder, monkeypatch, library):
    monkeypatch.setitem(sys.modules, library, None)
    load = load_unet if library == "diffusers" else TextEncoder.from_folder
    with pytest.raises(ConfigError, match=r"pip install 'difflab\[sd\]'"):
        load(sd_folder)


def test_a_text_encoder_saved_in_fp16_is_read_in_float32_as_the_unet(copy):
    """A pipeline saved in float16 (config torch_dtype float16): transformers 5 loads in the
    saved dtype, so the frozen CLIP would compute the condition in fp16 while UNet and VAE are
    float32, and a run's embeddings would depend on the transformers version."""
    import torch
    from transformers import CLIPTextModel

    fp32 = TextEncoder.from_folder(copy).encode(["a cat on a mat"])
    CLIPTextModel.from_pretrained(copy / "text_encoder").half().save_pretrained(
        copy / "text_encoder", safe_serialization=True
    )
    text = TextEncoder.from_folder(copy)
    assert {p.dtype for p in text.parameters()} == {torch.float32}
    upcast = CLIPTextModel.from_pretrained(copy / "text_encoder").float()  # fp16 weights
    upcast = TextEncoder(text.tokenizer, upcast)
    torch.testing.assert_close(text.encode(["a cat on a mat"]), upcast.encode(["a cat on a mat"]))
    torch.testing.assert_close(text.encode(["a cat on a mat"]), fp32, rtol=0.05, atol=0.05)


def test_loading_the_pipeline_asks_for_nothing_to_install(sd_folder):
    """Without accelerate installed, diffusers logs "install accelerate" on every load unless
    low_cpu_mem_usage is off; difflab loads every part of the folder without that notice."""
    from difflab.integrations.stable_diffusion.folder import load_clip
    from difflab.latents.codec import VAECodec

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # diffusers' loggers do not propagate to pytest's
    for name in ("diffusers", "transformers"):
        logging.getLogger(name).addHandler(handler)
    try:
        load_unet(sd_folder)
        load_clip(sd_folder)
        VAECodec.from_folder(sd_folder)
    finally:
        for name in ("diffusers", "transformers"):
            logging.getLogger(name).removeHandler(handler)
    assert not [r for r in records if "accelerate" in r.getMessage()]
