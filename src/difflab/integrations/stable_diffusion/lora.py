"""LoRA of a Stable Diffusion UNet (and its text encoder) with peft (`model.lora`), and its
export as the `pytorch_lora_weights.safetensors` that diffusers' `load_lora_weights` reads.

The adapter is added as diffusers' train_text_to_image_lora.py adds it (`unet.add_adapter`,
Gaussian A, zero B), so at step 0 the adapted UNet is the pretrained one and the exported
weights carry diffusers' key names and the scale alpha / rank in the adapter's config.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from difflab.config.schema import LoraConfig
from difflab.core.errors import CheckpointError, ConfigError
from difflab.core.file_modes import respect_umask
from difflab.runs.files import write_atomic

LORA_FILE = "pytorch_lora_weights.safetensors"  # the name load_lora_weights looks for
LORA_FOLDER = "lora"  # runs/NAME/lora/
# the CLIP text model's attention projections (transformers' names), model.lora.text_encoder's
TEXT_ENCODER_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")


def import_peft():
    try:
        import peft  # optional dependency (the `sd` extra)
    except ImportError as err:
        raise ConfigError(
            "LoRA (model.lora.rank > 0) needs peft: pip install 'difflab[sd]'"
        ) from err
    return peft


def add_lora(unet: nn.Module, lora: LoraConfig) -> nn.Module:
    """Freeze unet and add a LoRA adapter of lora.rank on the modules named by lora.targets;
    A is drawn from the global torch RNG. Returns unet, its adapter the only trainable part."""
    unet.requires_grad_(False)
    try:
        unet.add_adapter(_peft_config(lora, list(lora.targets)))
    except ValueError as err:  # peft: no module of the UNet matches a target
        raise ConfigError(f"config key 'model.lora.targets' ({lora.targets}): {err}") from None
    return unet


def add_text_encoder_lora(text_encoder: nn.Module, lora: LoraConfig) -> nn.Module:
    """Freeze a CLIP text model and add a LoRA adapter of lora.rank and alpha on its attention
    projections (TEXT_ENCODER_TARGETS), as diffusers' LoRA scripts do with
    --train_text_encoder. Returns text_encoder, its adapter the only trainable part."""
    config = _peft_config(lora, list(TEXT_ENCODER_TARGETS))
    text_encoder.requires_grad_(False)
    # peft's own injection: transformers' add_adapter does the same but asks for a newer peft
    import_peft().inject_adapter_in_model(config, text_encoder)
    text_encoder.peft_config = {"default": config}  # what get_peft_model_state_dict reads
    return text_encoder


def _peft_config(lora: LoraConfig, targets: list[str]):
    return import_peft().LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha if lora.alpha is not None else lora.rank,
        init_lora_weights="gaussian",
        target_modules=targets,
    )


def lora_state(unet: nn.Module) -> dict[str, Tensor]:
    """The adapter's weights of an adapted UNet in diffusers' LoRA format (module +
    `.lora.down.weight` / `.lora.up.weight`, A and B), as save_lora_weights takes them."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    return convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))


def text_encoder_lora_state(text_encoder: nn.Module) -> dict[str, Tensor]:
    """A CLIP text model's adapter as lora_state gives it, its keys under `text_model.` as
    transformers 4 names CLIPTextModel's modules (and published SD LoRA files hold them);
    transformers 5, which dropped that level, loads them too."""
    state = lora_state(text_encoder)
    return {k if k.startswith("text_model.") else f"text_model.{k}": v for k, v in state.items()}


def save_lora(unet: nn.Module, out: str | Path, text_encoder: nn.Module | None = None) -> Path:
    """Write out/pytorch_lora_weights.safetensors (the UNet's adapter with its alpha, and the
    text encoder's under `text_encoder.` when given) atomically: a temporary file renamed over
    the earlier export. Returns out."""
    from diffusers import StableDiffusionPipeline

    parts = {"unet_lora_layers": lora_state(unet), "unet_lora_adapter_metadata": _metadata(unet)}
    if text_encoder is not None:
        parts["text_encoder_lora_layers"] = text_encoder_lora_state(text_encoder)
        parts["text_encoder_lora_adapter_metadata"] = _metadata(text_encoder)

    def write(tmp: Path) -> None:
        StableDiffusionPipeline.save_lora_weights(
            tmp.parent, weight_name=tmp.name, safe_serialization=True, **parts
        )
        respect_umask(tmp)

    write_atomic(Path(out) / LORA_FILE, write)
    return Path(out)


def _metadata(model: nn.Module) -> dict:
    """The adapter's peft config (rank, alpha, targets), stored in the file so that
    load_lora_weights scales by alpha / rank as the run trained."""
    config = getattr(model, "peft_config", {}).get("default")
    if config is None:
        raise CheckpointError("the model has no LoRA adapter to export (model.lora.rank is 0)")
    return config.to_dict()
