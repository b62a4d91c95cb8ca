"""Named network presets and `build_network`, the one way recipes make a network.

A preset is a function of the data's shape (channels, image size, number of classes) that
returns a typed config; `options` then override config fields by name.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Any

from torch import nn

from difflab.core.errors import ConfigError
from difflab.core.registry import Registry
from difflab.networks.dit import DiT, DiTConfig
from difflab.networks.prior import DiffusionPrior, PriorConfig
from difflab.networks.unet import UNet, UNetConfig
from difflab.networks.upsampler import Upsampler, UpsamplerConfig

NetworkConfig = UNetConfig | DiTConfig | PriorConfig | UpsamplerConfig
Preset = Callable[[int, int, "int | None"], NetworkConfig]

NETWORKS: Registry[Preset] = Registry("network")

# Fields the builder sets from the data; options may not override them.
DATA_FIELDS = ("in_channels", "image_size", "num_classes", "embedding_dim")


def _unet(in_channels: int, image_size: int, num_classes: int | None, **fields: Any) -> UNetConfig:
    """A UNet for this data, with attention at the second level (16x16 for 32x32 images)."""
    return UNetConfig(
        in_channels=in_channels,
        out_channels=in_channels,
        image_size=image_size,
        num_classes=num_classes,
        attention_resolutions=(image_size // 2,),
        **fields,
    )


@NETWORKS.register("unet-tiny")
def unet_tiny(in_channels: int, image_size: int, num_classes: int | None) -> UNetConfig:
    """For tests and the CPU digits demo: two levels, attention at the lower one."""
    return _unet(
        in_channels,
        image_size,
        num_classes,
        base_channels=32,
        channel_mults=(1, 2),
        blocks_per_level=1,
        dropout=0.0,
        norm_groups=8,
    )


@NETWORKS.register("unet-small")
def unet_small(in_channels: int, image_size: int, num_classes: int | None) -> UNetConfig:
    """MNIST-sized: three levels (28, 14, 7 for MNIST), attention at the middle one."""
    return _unet(
        in_channels,
        image_size,
        num_classes,
        base_channels=64,
        channel_mults=(1, 2, 2),
        blocks_per_level=2,
        dropout=0.1,
        num_heads=4,
    )


@NETWORKS.register("unet-cifar10")
def unet_cifar10(in_channels: int, image_size: int, num_classes: int | None) -> UNetConfig:
    """The DDPM CIFAR-10 network (Ho et al. 2020; diffusers' google/ddpm-cifar10-32):
    channels 128/256/256/256, 2 residual blocks per level, attention at 16x16, dropout 0.1."""
    return _unet(
        in_channels,
        image_size,
        num_classes,
        base_channels=128,
        channel_mults=(1, 2, 2, 2),
        blocks_per_level=2,
        dropout=0.1,
        num_heads=1,
    )


def _dit(in_channels: int, image_size: int, num_classes: int | None, **fields: Any) -> DiTConfig:
    return DiTConfig(
        in_channels=in_channels,
        out_channels=in_channels,
        image_size=image_size,
        num_classes=num_classes,
        **fields,
    )


@NETWORKS.register("dit-tiny")
def dit_tiny(in_channels: int, image_size: int, num_classes: int | None) -> DiTConfig:
    """For tests: two blocks of width 64."""
    return _dit(in_channels, image_size, num_classes, hidden_size=64, depth=2, num_heads=2)


@NETWORKS.register("dit-s/2")
def dit_s2(in_channels: int, image_size: int, num_classes: int | None) -> DiTConfig:
    """DiT-S/2 (Peebles & Xie 2023, Table 1): width 384, 12 blocks, 6 heads, patch 2."""
    return _dit(in_channels, image_size, num_classes, hidden_size=384, depth=12, num_heads=6)


@NETWORKS.register("dit-b/2")
def dit_b2(in_channels: int, image_size: int, num_classes: int | None) -> DiTConfig:
    """DiT-B/2 (Peebles & Xie 2023, Table 1): width 768, 12 blocks, 12 heads, patch 2."""
    return _dit(in_channels, image_size, num_classes, hidden_size=768, depth=12, num_heads=12)


@NETWORKS.register("prior")
def prior(in_channels: int, image_size: int, num_classes: int | None) -> PriorConfig:
    """unCLIP's diffusion prior over embeddings of in_channels values (image_size is 1: a
    vector); it has no labels. Width 256, 4 blocks, causal attention; CPU-sized."""
    if num_classes is not None:
        raise ConfigError("network 'prior' takes no class labels (model.class_conditional)")
    return PriorConfig(in_channels=in_channels)


@NETWORKS.register("upsampler")
def upsampler(in_channels: int, image_size: int, num_classes: int | None) -> UpsamplerConfig:
    """unCLIP's diffusion upsampler for CPU-sized images: unet-tiny's layout with the
    low-resolution image as extra input channels; no labels."""
    if num_classes is not None:
        raise ConfigError("network 'upsampler' takes no class labels (model.class_conditional)")
    return UpsamplerConfig(
        in_channels=in_channels,
        out_channels=in_channels,
        image_size=image_size,
        base_channels=32,
        channel_mults=(1, 2),
        blocks_per_level=1,
        attention_resolutions=(),
        dropout=0.0,
        norm_groups=8,
    )


def check_network_options(name: str, options: dict[str, Any]) -> None:
    """Raise ConfigError naming `model.options.KEY` for a key that is not a field of the
    preset's config (or is one the data sets), before anything is built."""
    config_type = typing.get_type_hints(NETWORKS.get(name))["return"]
    valid = [f.name for f in dataclasses.fields(config_type) if f.name not in DATA_FIELDS]
    for key in options:
        if key not in valid:
            raise ConfigError(
                f"model.options.{key} is not an option of network {name!r}; "
                f"its options are: {', '.join(sorted(valid))}"
            )


def _apply_options(config: NetworkConfig, options: dict[str, Any]) -> NetworkConfig:
    """Override config fields; bad types and impossible values raise ConfigError."""
    # YAML gives lists where configs hold tuples.
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    return dataclasses.replace(config, **values)


MODELS: dict[type, Callable[[Any], nn.Module]] = {
    UNetConfig: UNet,
    DiTConfig: DiT,
    PriorConfig: DiffusionPrior,
    UpsamplerConfig: Upsampler,
}


def build_network(
    name: str,
    *,
    in_channels: int,
    image_size: int,
    num_classes: int | None,
    options: dict[str, Any] | None = None,
    embedding_dim: int = 0,
) -> nn.Module:
    """Build the preset `name` for data of this shape (and condition vectors of size
    `embedding_dim`, 0 for none), with `options` overriding its fields.

    >>> net = build_network("unet-tiny", in_channels=1, image_size=8, num_classes=10)
    >>> net.config.base_channels
    32
    """
    preset = NETWORKS.get(name)
    for key, value in (("in_channels", in_channels), ("image_size", image_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"network {key}={value!r}: expected a positive integer")
    check_network_options(name, dict(options or {}))
    config = preset(in_channels, image_size, num_classes)
    config = _apply_options(config, {**(options or {}), "embedding_dim": embedding_dim})
    return MODELS[type(config)](config)
