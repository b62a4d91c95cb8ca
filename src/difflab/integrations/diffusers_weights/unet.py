"""difflab's UNet <-> diffusers' UNet2DModel (the DDPM layout both share), weights exactly.

The matching UNet2DModel has flip_sin_to_cos=True, freq_shift=0 (difflab's [cos, sin] time
features), norm_eps=1e-6 and, for a class-conditional UNet, num_class_embeds = num_classes + 1:
diffusers' class 0 is difflab's null label and class k + 1 is difflab's label k.
"""

from __future__ import annotations

import re
from typing import Any

from torch import Tensor

from difflab.core.errors import ConfigError
from difflab.networks.unet import UNet, UNetConfig

# difflab key pattern -> diffusers key, applied in order to each parameter name
_RULES = [
    (r"^time_embed\.mlp\.0\.", "time_embedding.linear_1."),
    (r"^time_embed\.mlp\.2\.", "time_embedding.linear_2."),
    (r"^label_embed\.table\.", "class_embedding."),
    (r"^norm_out\.", "conv_norm_out."),
    (r"^(down|up)\.(\d+)\.blocks\.(\d+)\.res\.", r"\1_blocks.\2.resnets.\3."),
    (r"^(down|up)\.(\d+)\.blocks\.(\d+)\.attn\.", r"\1_blocks.\2.attentions.\3."),
    (r"^down\.(\d+)\.resample\.", r"down_blocks.\1.downsamplers.0."),
    (r"^up\.(\d+)\.resample\.", r"up_blocks.\1.upsamplers.0."),
    (r"^mid\.(\d+)\.res\.", r"mid_block.resnets.\1."),
    (r"^mid\.0\.attn\.", "mid_block.attentions.0."),
    (r"\.emb_proj\.", ".time_emb_proj."),
    (r"\.shortcut\.", ".conv_shortcut."),
    (r"\.attentions\.(\d+)\.norm\.", r".attentions.\1.group_norm."),
    (r"\.to_out\.", ".to_out.0."),
]


def _diffusers_key(key: str) -> str:
    for pattern, replacement in _RULES:
        key = re.sub(pattern, replacement, key)
    return key


def _attention_head_dim(config: UNetConfig) -> int | None:
    """diffusers splits heads by a head width shared by every attention level and the middle
    block; difflab by a head count. They agree when those levels have one width (or 1 head)."""
    if config.num_heads == 1:
        return None  # diffusers: one head of the block's width
    widths = {
        config.base_channels * m
        for m, r in zip(config.channel_mults, config.resolutions(), strict=True)
        if r in config.attention_resolutions
    }
    widths.add(config.base_channels * config.channel_mults[-1])
    if len(widths) != 1:
        raise ConfigError(
            f"UNet num_heads={config.num_heads} with attention at widths {sorted(widths)}: "
            "diffusers' UNet2DModel has one head width for every level, not one head count"
        )
    return widths.pop() // config.num_heads


def diffusers_unet_config(config: UNetConfig) -> dict[str, Any]:
    """The UNet2DModel config whose network computes difflab's UNet `config`."""
    attn = [r in config.attention_resolutions for r in config.resolutions()]
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn))
    return {
        "sample_size": config.image_size,
        "in_channels": config.in_channels,
        "out_channels": config.out_channels,
        "block_out_channels": tuple(config.base_channels * m for m in config.channel_mults),
        "layers_per_block": config.blocks_per_level,
        "down_block_types": down,
        "up_block_types": up,
        "attention_head_dim": _attention_head_dim(config),
        "norm_num_groups": config.norm_groups,
        "norm_eps": 1e-6,
        "dropout": config.dropout,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "num_class_embeds": None if config.num_classes is None else config.num_classes + 1,
    }


# Settings of a UNet2DModel that difflab's UNet has no counterpart for: the value it must have
_FIXED = {
    "center_input_sample": False,
    "time_embedding_type": "positional",
    "time_embedding_dim": None,
    "freq_shift": 0,
    "flip_sin_to_cos": True,
    "mid_block_type": "UNetMidBlock2D",
    "mid_block_scale_factor": 1,
    "downsample_padding": 1,
    "downsample_type": "conv",
    "upsample_type": "conv",
    "act_fn": "silu",
    "norm_eps": 1e-6,
    "attn_norm_num_groups": None,
    "resnet_time_scale_shift": "default",
    "add_attention": True,
    "class_embed_type": None,
}


def unet_config_from_diffusers(config: dict[str, Any]) -> UNetConfig:
    """difflab's UNetConfig for a UNet2DModel config; a setting difflab cannot compute is a
    ConfigError naming it."""
    for key, expected in _FIXED.items():
        if key in config and config[key] != expected:
            raise ConfigError(
                f"UNet2DModel config {key}={config[key]!r}: difflab's UNet needs {expected!r}"
            )
    widths = list(config["block_out_channels"])
    size = config["sample_size"]
    size = size if isinstance(size, int) else size[0]
    attn = [t.startswith("Attn") for t in config["down_block_types"]]
    head_dim = config.get("attention_head_dim")
    classes = config.get("num_class_embeds")
    unet = UNetConfig(
        in_channels=config["in_channels"],
        out_channels=config["out_channels"],
        image_size=size,
        base_channels=widths[0],
        channel_mults=tuple(w // widths[0] for w in widths),
        blocks_per_level=config["layers_per_block"],
        attention_resolutions=tuple(size // 2**i for i, a in enumerate(attn) if a),
        dropout=float(config.get("dropout", 0.0)),
        num_heads=1 if head_dim is None else widths[-1] // head_dim,
        norm_groups=config["norm_num_groups"],
        num_classes=None if classes is None else classes - 1,
    )
    for key, value in diffusers_unet_config(unet).items():  # what difflab's config implies
        given = config.get(key, value)
        if (tuple(given) if isinstance(given, list) else given) != value:
            raise ConfigError(f"UNet2DModel config {key}={given!r}: difflab's UNet has {value!r}")
    return unet


def unet_weights_to_diffusers(unet: UNet) -> dict[str, Tensor]:
    """difflab UNet parameters under UNet2DModel's names."""
    return {_diffusers_key(k): v for k, v in unet.state_dict().items()}


def unet_weights_from_diffusers(config: UNetConfig, weights: dict[str, Tensor]) -> UNet:
    """A difflab UNet of `config` holding a UNet2DModel's `weights` (every key used), in
    their dtype."""
    unet = UNet(config).to(next(iter(weights.values())).dtype)
    names = {_diffusers_key(k): k for k in unet.state_dict()}
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ConfigError(f"UNet2DModel weight {unknown[0]!r} has no place in difflab's UNet")
    unet.load_state_dict({names[k]: v for k, v in weights.items()}, strict=True)
    return unet
