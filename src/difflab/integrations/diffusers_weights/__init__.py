"""Weight interchange with diffusers (the `sd` or `bench` extra): difflab's UNet and DiT as
diffusers' UNet2DModel and DiTTransformer2DModel, and back, computing the same network.

`to_diffusers` / `from_diffusers` convert models; `export_diffusers` writes a folder in
diffusers' `save_pretrained` layout (safetensors) and `import_diffusers` reads one. diffusers
is imported inside the functions, so difflab works without it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from torch import nn

from difflab.core.errors import ConfigError
from difflab.integrations.diffusers_weights.dit import (
    diffusers_dit_config,
    dit_config_from_diffusers,
    dit_weights_from_diffusers,
    dit_weights_to_diffusers,
    use_difflab_time_features,
)
from difflab.integrations.diffusers_weights.unet import (
    diffusers_unet_config,
    unet_config_from_diffusers,
    unet_weights_from_diffusers,
    unet_weights_to_diffusers,
)
from difflab.networks.dit import DiT
from difflab.networks.unet import UNet

__all__ = [
    "export_diffusers",
    "from_diffusers",
    "import_diffusers",
    "to_diffusers",
    "use_difflab_time_features",
]

_CLASSES = ("UNet2DModel", "DiTTransformer2DModel")
_LABELS = "transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight"


def to_diffusers(network: nn.Module) -> nn.Module:
    """A diffusers UNet2DModel or DiTTransformer2DModel with `network`'s weights and dtype."""
    import diffusers  # optional: the sd / bench extra

    if isinstance(network, UNet):
        model = diffusers.UNet2DModel(**diffusers_unet_config(network.config))
        weights = unet_weights_to_diffusers(network)
    elif isinstance(network, DiT):
        model = diffusers.DiTTransformer2DModel(**diffusers_dit_config(network.config))
        weights = dit_weights_to_diffusers(network)
    else:
        raise ConfigError(f"{type(network).__name__} has no diffusers counterpart: UNet or DiT")
    dtype = next(network.parameters()).dtype
    if dtype != torch.float32:  # diffusers builds float32 and warns at any .to(dtype)
        model.to(dtype)
    model.load_state_dict(weights, strict=True)
    return model.eval()


def from_diffusers(model: nn.Module) -> UNet | DiT:
    """difflab's network computing a diffusers UNet2DModel or DiTTransformer2DModel (a DiT
    whose label table is one zero row plus the null row is unconditional)."""
    name, config, weights = type(model).__name__, dict(model.config), model.state_dict()
    if name == "UNet2DModel":
        return unet_weights_from_diffusers(unet_config_from_diffusers(config), weights)
    if name == "DiTTransformer2DModel":
        unconditional = config["num_embeds_ada_norm"] == 1 and not weights[_LABELS].any()
        dit_config = dit_config_from_diffusers(config, conditional=not unconditional)
        return dit_weights_from_diffusers(dit_config, weights)
    raise ConfigError(f"diffusers {name} has no difflab counterpart: one of {_CLASSES}")


def export_diffusers(network: nn.Module, folder: str | Path) -> Path:
    """Write `network` as a diffusers model folder (config.json, safetensors weights) that
    `<class>.from_pretrained(folder)` loads: written beside it and renamed into place, over an
    earlier export only (a folder without config.json is refused)."""
    folder = Path(folder).resolve()
    if folder.exists() and not (folder / "config.json").is_file():
        raise ConfigError(f"{folder} exists and is not a diffusers model folder: not replaced")
    model = to_diffusers(network)
    tmp, old = (folder.with_name(f".{folder.name}.{end}") for end in ("tmp", "old"))
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # no half-written copy left beside the folder
        raise
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def import_diffusers(folder: str | Path) -> UNet | DiT:
    """The difflab network of a diffusers UNet2DModel or DiTTransformer2DModel folder (weights
    read from safetensors, no code run)."""
    import diffusers  # optional: the sd / bench extra

    config_file = Path(folder) / "config.json"
    try:
        name = json.loads(config_file.read_text())["_class_name"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{config_file}: not a diffusers model config ({e})") from None
    if name not in _CLASSES:
        raise ConfigError(f"{config_file}: _class_name {name!r}, expected one of {_CLASSES}")
    model = getattr(diffusers, name).from_pretrained(
        folder, use_safetensors=True, torch_dtype=torch.float32
    )
    return from_diffusers(model)
