"""A run folder read back: its config, model.json and newest checkpoint as a Denoiser.

`build_denoiser` is the one place a config becomes a network (training builds with it too);
a network that is not a preset comes from its plug-in (config/plugins.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from difflab.config.build import build_config
from difflab.config.plugins import network_plugin
from difflab.config.recipes import read_run_yaml
from difflab.config.schema import Config
from difflab.core.errors import CheckpointError, ConfigError
from difflab.latents import Codec, IdentityCodec
from difflab.networks import build_network
from difflab.parameterization import Denoiser
from difflab.runs.checkpoint import load_latest_checkpoint, read_weights
from difflab.runs.controlnet import controlled_network
from difflab.runs.files import read_model_info
from difflab.runs.frozen import load_trained
from difflab.runs.latents import build_codec, recorded_latent
from difflab.schedules import make_schedule

# in_channels, image_size (the images'), num_classes, class_names of a run; a latent run's
# codec settings and latent_shape (training/latent_data.latent_record); an unCLIP decoder's
# embedding_dim and image_encoder (runs/image_embedding.py)
MODEL_INFO = "model.json"


@dataclass
class LoadedRun:
    config: Config
    denoiser: Denoiser
    num_classes: int  # 0 for an unconditional model
    image_shape: tuple[int, int, int]  # (C, H, W) of the images
    step: int
    codec: Codec = field(default_factory=IdentityCodec)  # a latent run's VAE
    embedding_dim: int = 0  # E of cond.embedding (an unCLIP decoder's); 0: none
    image_encoder: str | None = None  # the folder of the encoder that made its embeddings

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(c, h, w) of what the denoiser works on: the images' shape for pixel diffusion."""
        return self.codec.latent_shape(self.image_shape)


def build_denoiser(
    config: Config,
    *,
    in_channels: int,
    image_size: int,
    num_classes: int,
    image_shape: tuple[int, int, int] | None = None,
    embedding_dim: int = 0,
) -> Denoiser:
    """The network of config.model (a preset, or a plug-in's: config/plugins.py) for data of
    in_channels x image_size^2 (latents with a codec, of images of image_shape; None: the
    data are the images) behind its schedule and parameterization; a ControlNet run's wrapped
    with its ControlNet, whose hints are made from the images."""
    m = config.model
    plugin = network_plugin(m.network)
    if plugin is not None:
        network = plugin.build_network(m, in_channels, image_size)
    else:
        network = build_network(
            m.network,
            in_channels=in_channels,
            image_size=image_size,
            num_classes=num_classes or None,
            options=dict(m.options),
            embedding_dim=embedding_dim,
        )
    if m.controlnet.base_run is not None:
        c, size, _ = image_shape or (in_channels, image_size, image_size)
        network = controlled_network(network, m.controlnet, c, size // image_size)
    schedule = make_schedule(
        m.schedule, num_steps=m.num_steps, zero_terminal_snr=m.zero_terminal_snr
    )
    return Denoiser(network, schedule, m.parameterization)


def load_run(
    run_dir: Path | str,
    *,
    weights: str = "ema",
    device: torch.device | str = "cpu",
    trust_checkpoint: bool = False,
) -> LoadedRun:
    """The denoiser of a run's newest checkpoint that loads, with its EMA or raw weights, or
    those of a .safetensors file such as `difflab ema`'s (trust_checkpoint: see
    load_checkpoint)."""
    run_dir = Path(run_dir)
    if weights not in ("ema", "raw") and not _is_weights_file(weights):
        raise ConfigError(f"weights must be 'ema', 'raw' or a .safetensors file, got {weights!r}")
    if not (run_dir / "config.yaml").is_file() or not (run_dir / MODEL_INFO).is_file():
        raise CheckpointError(f"{run_dir} is not a difflab run folder (no config.yaml/model.json)")
    config = build_config(read_run_yaml(run_dir))
    info = read_model_info(run_dir)
    ckpt = load_latest_checkpoint(run_dir, trust=trust_checkpoint)
    codec = build_codec(recorded_latent(info), device)
    image_shape = (info["in_channels"], info["image_size"], info["image_size"])
    c, size, _ = codec.latent_shape(image_shape)
    embedding_dim = int(info.get("embedding_dim", 0))
    denoiser = build_denoiser(
        config,
        in_channels=c,
        image_size=size,
        num_classes=info["num_classes"],
        image_shape=image_shape,
        embedding_dim=embedding_dim,
    )
    if weights in ("ema", "raw"):
        trained = ckpt.weights("ema" if weights == "ema" else "model")
    else:
        trained = read_weights(Path(weights))
    load_trained(denoiser.network, *trained)
    return LoadedRun(
        config=config,
        denoiser=denoiser.to(device).eval(),
        num_classes=info["num_classes"],
        image_shape=image_shape,
        step=ckpt.step,
        codec=codec,
        embedding_dim=embedding_dim,
        image_encoder=info.get("image_encoder"),
    )


def _is_weights_file(weights: str) -> bool:
    return weights.endswith(".safetensors") and Path(weights).is_file()


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


def start_from_base(network: nn.Module, base: LoadedRun, config: Config, info: dict) -> None:
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
    theirs = (*base.latent_shape, base.num_classes)  # the images' shape in a pixel run
    if (c, size, size, info["num_classes"]) != theirs:
        raise ConfigError(
            f"this run's data gives {(c, size, size)} and {info['num_classes']} classes, "
            f"{where} was trained on {base.latent_shape} and {base.num_classes}"
        )
    network.base.load_state_dict(base.denoiser.network.state_dict())
    network.controlnet.copy_encoder(network.base)
