"""LoRA of a Stable Diffusion UNet with peft (`model.lora`), and its export as the
`pytorch_lora_weights.safetensors` that diffusers' `load_lora_weights` reads.

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
from difflab.integrations.stable_diffusion.folder import load_unet
from difflab.runs.files import write_atomic

LORA_FILE = "pytorch_lora_weights.safetensors"  # the name load_lora_weights looks for
LORA_FOLDER = "lora"  # runs/NAME/lora/


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
    peft = import_peft()
    config = peft.LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha if lora.alpha is not None else lora.rank,
        init_lora_weights="gaussian",
        target_modules=list(lora.targets),
    )
    unet.requires_grad_(False)
    try:
        unet.add_adapter(config)
    except ValueError as err:  # peft: no module of the UNet matches a target
        raise ConfigError(f"config key 'model.lora.targets' ({lora.targets}): {err}") from None
    return unet


def lora_state(unet: nn.Module) -> dict[str, Tensor]:
    """The adapter's weights of an adapted UNet in diffusers' LoRA format (module +
    `.lora.down.weight` / `.lora.up.weight`, A and B), as save_lora_weights takes them."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    return convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))


def save_lora(unet: nn.Module, out: str | Path) -> Path:
    """Write out/pytorch_lora_weights.safetensors (the adapter with its alpha) atomically: a
    temporary file renamed over the earlier export. Returns out."""
    from diffusers import StableDiffusionPipeline

    layers, metadata = lora_state(unet), _adapter_metadata(unet)

    def write(tmp: Path) -> None:
        StableDiffusionPipeline.save_lora_weights(
            tmp.parent,
            unet_lora_layers=layers,
            unet_lora_adapter_metadata=metadata,
            weight_name=tmp.name,
            safe_serialization=True,
        )
        respect_umask(tmp)

    write_atomic(Path(out) / LORA_FILE, write)
    return Path(out)


def _adapter_metadata(unet: nn.Module) -> dict:
    """The adapter's peft config (rank, alpha, targets), stored in the file so that
    load_lora_weights scales by alpha / rank as the run trained."""
    config = getattr(unet, "peft_config", {}).get("default")
    if config is None:
        raise CheckpointError("the UNet has no LoRA adapter to export (model.lora.rank is 0)")
    return config.to_dict()


def export_lora(
    pretrained: str | Path, lora: LoraConfig, weights: dict[str, Tensor], out: str | Path
) -> Path:
    """Write out/pytorch_lora_weights.safetensors: the adapter of `weights` (the state dict of
    pretrained's UNet with lora's adapter). Returns out."""
    unet = add_lora(load_unet(pretrained), lora)
    try:
        unet.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"the weights do not fit the UNet with model.lora: {err}") from err
    return save_lora(unet, out)
