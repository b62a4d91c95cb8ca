"""A ControlNet on a trained run (Zhang et al. 2023): the network of `model.controlnet` and
the hint transform that fills Condition.hint (runs.load.start_from_base: the start from the
base run's EMA weights)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from difflab.config.plugins import network_plugin
from difflab.config.schema import Config, ControlNetConfig
from difflab.core.errors import ConfigError
from difflab.data import BatchTransform, ImageDataset, make_hint
from difflab.data.hint_maps import ReadyHint, with_hint_maps
from difflab.networks import CONTROLNETS


def is_controlnet_run(config: Config) -> bool:
    """A run that samples under hints: a ControlNet on a base run (model.controlnet.base_run)
    or a plug-in network that is one (its CONTROLNET, e.g. sd-controlnet)."""
    plugin = network_plugin(config.model.network)
    return config.model.controlnet.base_run is not None or getattr(plugin, "CONTROLNET", False)


def hint_transform(cn: ControlNetConfig) -> BatchTransform | None:
    """The transform that adds batch["hint"], or None without a ControlNet."""
    return make_hint(cn.hint, **cn.hint_options) if cn.base_run is not None else None


def training_hint(config: Config) -> BatchTransform | None:
    """The hint transform of training batches: hint_transform, or with `data.hints` the
    dataset's ready-made maps (ReadyHint; see with_paired_hints)."""
    if config.data.hints is not None and config.model.controlnet.base_run is not None:
        return ReadyHint()
    return hint_transform(config.model.controlnet)


def with_paired_hints(config: Config, dataset: ImageDataset) -> ImageDataset:
    """The dataset with its `data.hints` maps (hint_maps.with_hint_maps, the channels of the
    run's hint type); unchanged without data.hints."""
    cn = config.model.controlnet
    if config.data.hints is None or cn.base_run is None:
        return dataset
    channels = make_hint(cn.hint, **cn.hint_options).channels(dataset.image_shape[0])
    return with_hint_maps(dataset, Path(config.data.hints).expanduser(), channels)


def controlled_network(
    network: nn.Module, cn: ControlNetConfig, image_channels: int, hint_factor: int = 1
) -> nn.Module:
    """network (a UNet or DiT: networks.CONTROLNETS) with a ControlNet copied from it, the base
    frozen: only the ControlNet trains. Its hints are made from images of image_channels
    channels, hint_factor times the network's input size (a latent codec's downsampling).
    Weights come from the base run (`start_from_base`) or a checkpoint."""
    kind = type(network).__name__
    if kind not in CONTROLNETS:
        raise ConfigError(
            f"config key 'model.controlnet.base_run' needs one of {CONTROLNETS.names()} "
            f"networks, got {kind}"
        )
    channels = make_hint(cn.hint, **cn.hint_options).channels(image_channels)
    build = CONTROLNETS.get(kind)
    return build(network, channels, cn.scale, hint_factor=hint_factor).freeze_base()
