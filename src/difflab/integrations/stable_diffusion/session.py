"""The training session of a Stable Diffusion fine-tune: the trainer's session with the
pretrained folder's UNet as the network, its VAE as the codec, its frozen text encoder giving
the condition (and the null text for caption dropout), and COCO streamed by DataLoader workers.

Only the UNet trains (only its LoRA adapter, with model.lora.rank > 0). The run's config must
describe the folder's scheduler (model.schedule, model.num_steps, model.zero_terminal_snr,
model.parameterization): a mismatch is refused, naming the key, so the run trains the model
the folder holds.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from difflab.config.schema import Config, LatentConfig
from difflab.core.errors import ConfigError
from difflab.data.coco import CocoCaptions
from difflab.integrations.stable_diffusion.data import CaptionedLatents
from difflab.integrations.stable_diffusion.scheduler import SchedulerSettings, read_scheduler
from difflab.integrations.stable_diffusion.text import TextEncoder
from difflab.parallel.distributed import barrier, is_main, rank, world_size
from difflab.runs.latents import build_codec, latent_record, latent_shape_of
from difflab.runs.load import build_denoiser
from difflab.training.session import TrainingRun, prepare_run, start_training, write_run_files
from difflab.training.stream import StreamingData


def check_scheduler(config: Config, settings: SchedulerSettings, folder: str) -> None:
    """The run's schedule and parameterization are the pretrained folder's."""
    m = config.model
    for key, ours, theirs in [
        ("model.schedule", m.schedule, settings.schedule),
        ("model.num_steps", m.num_steps, settings.num_steps),
        ("model.zero_terminal_snr", m.zero_terminal_snr, settings.zero_terminal_snr),
        ("model.parameterization", m.parameterization, settings.parameterization),
    ]:
        if ours != theirs:
            raise ConfigError(
                f"config key '{key}' is {ours!r} but {folder}/scheduler says {theirs!r}"
            )


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
    t, folder = config.train, str(config.model.pretrained)
    check_scheduler(config, read_scheduler(folder), folder)
    dataset = CocoCaptions(
        str(config.data.root),
        split=_split(config.data.split),
        image_size=config.data.image_size,
        seed=t.seed,
    )
    device, run_dir, checkpoint = prepare_run(config, trust_checkpoint)
    latent = sd_latent(config)
    codec = build_codec(latent, device)
    text = TextEncoder.from_folder(folder).to(device)
    image_shape = (3, dataset.image_size, dataset.image_size)
    c, h, _ = latent_shape_of(codec, image_shape)
    torch.manual_seed(t.seed)  # a LoRA adapter's initial A
    denoiser = build_denoiser(config, in_channels=c, image_size=h, num_classes=0).to(device)
    denoiser.train()  # diffusers loads the UNet in eval mode; it trains as every network does
    state, start, ema_denoiser = start_training(
        config, denoiser, device, checkpoint, text.null_text
    )
    stream = _stream(config, dataset)
    data = CaptionedLatents(stream, codec, text, flip=config.data.flip, device=device)
    created = False
    if is_main():
        info = {"in_channels": 3, "image_size": dataset.image_size, "num_classes": 0}
        info["class_names"] = []
        record = latent_record(latent, codec, image_shape)
        created = write_run_files(run_dir, config, {**info, **record})
    barrier()
    return TrainingRun(
        config=config,
        run_dir=run_dir,
        device=device,
        data=data,
        val=None,
        state=state,
        denoiser=denoiser,
        ema_denoiser=ema_denoiser,
        image_shape=image_shape,
        num_classes=0,
        start_step=start,
        codec=codec,
        streamed_skipped=stream.skipped,
        created=created,
    )


def _stream(config: Config, dataset: CocoCaptions) -> StreamingData:
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


def _split(split: str):
    if split not in ("train", "val"):
        raise ConfigError(
            f"config key 'data.split' must be 'train' or 'val' for coco, got {split!r}"
        )
    return split
