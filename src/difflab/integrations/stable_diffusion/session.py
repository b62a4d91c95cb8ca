"""The training session of a Stable Diffusion fine-tune: the trainer's session with the
pretrained folder's UNet as the network, its VAE as the codec, its frozen text encoder giving
the condition (and the null text for caption dropout), and captioned images streamed by
DataLoader workers (data/captioned.py: COCO, OTX, image folder or WebDataset layouts).

Only the UNet trains (only its LoRA adapter, with model.lora.rank > 0, and the text encoder's
with model.lora.text_encoder: that encoder is then part of the network, and the data gives it
token ids; only the ControlNet, with model.network sd-controlnet, whose batches carry the hint
of model.controlnet.hint and whose caption dropout keeps the hint, as the paper's). The run's
config must
describe the folder's scheduler (model.schedule, model.num_steps, model.zero_terminal_snr,
model.parameterization): a mismatch is refused, naming the key, so the run trains the model
the folder holds.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from difflab.config.schema import Config, LatentConfig
from difflab.core.errors import ConfigError
from difflab.data.captioned import CaptionedImages, CaptionOptions, read_entries
from difflab.data.hint_maps import MapHint, paired_files
from difflab.data.hints import make_hint
from difflab.data.transforms import BatchTransform
from difflab.integrations.stable_diffusion.controlnet import SD_CONTROLNET
from difflab.integrations.stable_diffusion.data import CaptionedLatents
from difflab.integrations.stable_diffusion.folder import check_text_width
from difflab.integrations.stable_diffusion.scheduler import (
    PREDICTION_TYPES,
    SchedulerSettings,
    read_scheduler,
)
from difflab.integrations.stable_diffusion.text import caption_text
from difflab.latents import Codec
from difflab.parallel.distributed import rank, world_size
from difflab.runs.latents import latent_shape_of
from difflab.runs.load import build_denoiser
from difflab.training.session import TrainingRun, open_run
from difflab.training.stream import StreamingData


def check_scheduler(config: Config, settings: SchedulerSettings, folder: str) -> None:
    """The run's schedule and parameterization are the pretrained folder's (the
    parameterization may be eps or v with model.override_prediction_type)."""
    m = config.model
    if m.override_prediction_type and m.parameterization not in PREDICTION_TYPES.values():
        raise ConfigError(
            f"config key 'model.parameterization' must be 'eps' or 'v' with "
            f"model.override_prediction_type, got {m.parameterization!r}"
        )
    for key, ours, theirs in [
        ("model.schedule", m.schedule, settings.schedule),
        ("model.num_steps", m.num_steps, settings.num_steps),
        ("model.zero_terminal_snr", m.zero_terminal_snr, settings.zero_terminal_snr),
        ("model.parameterization", m.parameterization, settings.parameterization),
    ]:
        if ours != theirs and not (key == "model.parameterization" and m.override_prediction_type):
            raise ConfigError(
                f"config key '{key}' is {ours!r} but {folder}/scheduler says {theirs!r} "
                f"(set {key}={_yaml(theirs)})"
            )


def _yaml(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def sd_latent(config: Config) -> LatentConfig:
    """The codec of a fine-tune: the pretrained folder's VAE, with model.latent's factors."""
    return replace(config.model.latent, vae=config.model.pretrained)


def with_absolute_pretrained(config: Config) -> Config:
    """config with model.pretrained as an absolute path, so the run's config.yaml and model.json
    name the folder wherever the run is loaded from."""
    folder = str(Path(str(config.model.pretrained)).expanduser().resolve())
    return replace(config, model=replace(config.model, pretrained=folder))


def open_sd_session(config: Config, *, trust_checkpoint: bool = False) -> TrainingRun:
    """The session of a fine-tune (model.pretrained), resumed from config.train.resume when
    set; config.data.root and image_size are set (checked with the config)."""
    config = with_absolute_pretrained(config)
    folder = str(config.model.pretrained)
    check_scheduler(config, read_scheduler(folder), folder)
    check_text_width(folder)
    run = open_run(config, SDSource(config), trust_checkpoint=trust_checkpoint)
    run.state.keep_hint = config.model.network == SD_CONTROLNET  # hints are never dropped
    return run


class SDSource:
    """training.session.RunSource of a fine-tune: captioned images (data/captioned.py) streamed
    by DataLoader workers, encoded by the folder's VAE (the codec) and frozen text encoder; the
    folder's UNet."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.dataset = captioned_images(config)
        self.latent = sd_latent(config)
        self.class_names: list[str] = []
        self.stream: StreamingData | None = None

    def null_text(self, device: torch.device) -> Tensor:
        self.text = caption_text(self.config.model).to(device)
        return self.text.null_text

    def denoiser(self, device: torch.device, codec: Codec, checkpoint):
        size = self.dataset.image_size
        image_shape = (3, size, size)
        c, h, _ = latent_shape_of(codec, image_shape)
        info = {"in_channels": c, "image_size": h, "num_classes": 0}
        torch.manual_seed(self.config.train.seed)  # a LoRA adapter's initial A
        denoiser = build_denoiser(self.config, **info).to(device)
        denoiser.train()  # diffusers loads the UNet in eval mode; it trains as every network does
        if self.config.train.gradient_checkpointing:
            denoiser.network.unet.enable_gradient_checkpointing()
        return denoiser, image_shape, info

    def data(self, device: torch.device, codec: Codec) -> tuple[CaptionedLatents, None]:
        self.stream = _stream(self.config, self.dataset)
        flip = self.config.data.flip
        hint = sd_hint(self.config)
        data = CaptionedLatents(self.stream, codec, self.text, flip=flip, device=device, hint=hint)
        return data, None

    def skipped(self) -> dict:
        return {"streamed_skipped": self.stream.skipped if self.stream is not None else {}}


def sd_hint(config: Config) -> BatchTransform | None:
    """A ControlNet run's hint transform: model.controlnet.hint's, or with data.hints the
    items' ready-made maps in that hint's channels; None for other fine-tunes."""
    if config.model.network != SD_CONTROLNET:
        return None
    cn = config.model.controlnet
    hint = make_hint(cn.hint, **cn.hint_options)
    return hint if config.data.hints is None else MapHint(hint.channels(3))


def _stream(config: Config, dataset: CaptionedImages) -> StreamingData:
    """This rank's part of every micro-batch, read by data.num_workers workers."""
    return StreamingData(
        dataset,
        batch_size=config.train.batch_size,
        seed=config.train.seed,
        num_workers=config.data.num_workers,
        max_bad_fraction=config.data.max_bad_fraction,
        rank=rank(),
        world=world_size(),
    )


def captioned_images(config: Config) -> CaptionedImages:
    """data.root's split in its layout (data.dataset; 'coco': found from the folder), with
    data.hints' maps paired by file name (hint_maps.paired_files)."""
    d = config.data
    options = CaptionOptions(split=d.split, caption_column=d.caption_column)
    entries = read_entries(str(d.root), d.dataset, options)
    name = f"{d.root} ({d.dataset}, split {d.split})"
    hint_files = None
    if d.hints is not None:
        images = [entry.file for entry in entries]
        hint_files = paired_files(images, Path(str(d.root)), Path(d.hints).expanduser())
    return CaptionedImages(
        entries,
        name=name,
        image_size=d.image_size,
        seed=config.train.seed,
        crop=d.crop,
        hint_files=hint_files,
    )
