"""Training a ControlNet on a trained run (Zhang et al. 2023): the network of
`model.controlnet`, the hint transform that fills Condition.hint, and the start from the base
run's EMA weights."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from difflab.data import BatchTransform, make_hint
from difflab.errors import ConfigError
from difflab.networks import ControlledUNet, UNet
from difflab.training.config import Config, ControlNetConfig

if TYPE_CHECKING:
    from difflab.generation import LoadedRun


def hint_transform(cn: ControlNetConfig) -> BatchTransform | None:
    """The transform that adds batch["hint"], or None without a ControlNet."""
    return make_hint(cn.hint, **cn.hint_options) if cn.base_run is not None else None


def controlled_network(network: nn.Module, cn: ControlNetConfig) -> ControlledUNet:
    """network (a UNet) with a ControlNet copied from it, the base frozen: only the ControlNet
    trains. Weights come from the base run (`start_from_base`) or a checkpoint."""
    if not isinstance(network, UNet):
        raise ConfigError(
            f"config key 'model.controlnet.base_run' needs a UNet network, got "
            f"{type(network).__name__}"
        )
    hint = make_hint(cn.hint, **cn.hint_options)
    channels = hint.channels(network.config.in_channels)
    return ControlledUNet.from_unet(network, channels, cn.scale).freeze_base()


# Model settings the ControlNet run must share with its base run.
SHARED_MODEL_KEYS = (
    "network",
    "options",
    "parameterization",
    "schedule",
    "num_steps",
    "zero_terminal_snr",
    "class_conditional",
)


def start_from_base(network: ControlledUNet, base: LoadedRun, config: Config, info: dict) -> None:
    """Set the frozen base and the ControlNet's copy to the base run's (EMA) weights, after
    checking that this run's model settings and data shape are the base run's."""
    where = f"the base run {config.model.controlnet.base_run}"
    if base.config.model.controlnet.base_run is not None:
        raise ConfigError(f"{where} is itself a ControlNet run; give the run it was trained on")
    for key in SHARED_MODEL_KEYS:
        mine, theirs = getattr(config.model, key), getattr(base.config.model, key)
        if mine != theirs:
            raise ConfigError(f"config key 'model.{key}' is {mine!r}, {where} has {theirs!r}")
    c, size = info["in_channels"], info["image_size"]
    theirs = (*base.image_shape, base.num_classes)
    if (c, size, size, info["num_classes"]) != theirs:
        raise ConfigError(
            f"this run's data gives images {(c, size, size)} and {info['num_classes']} classes, "
            f"{where} was trained on {base.image_shape} and {base.num_classes}"
        )
    network.base.load_state_dict(base.denoiser.network.state_dict())
    network.controlnet.copy_encoder(network.base)
