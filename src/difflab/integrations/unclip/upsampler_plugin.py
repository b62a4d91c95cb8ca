"""unCLIP's diffusion upsampler as a network plug-in (`model.network: unclip-upsampler`,
config/plugins.py): the trainer's image run whose condition is each image's low-resolution
version (model.unclip.low_size), noise-augmented to a level s ~ U[0, model.unclip.aug_max]
drawn from the step's generator; its grids upsample held-out images at aug_sample."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn

from difflab.config.build import require
from difflab.config.schema import Config, ModelConfig
from difflab.core.errors import ConfigError
from difflab.data.dataset import check_dataset_options
from difflab.integrations.unclip.augment import low_res, low_res_condition
from difflab.integrations.unclip.upsampling import upsample
from difflab.latents import Codec
from difflab.networks import presets
from difflab.parameterization import Denoiser
from difflab.training.batches import DeviceData
from difflab.training.image_source import ImageSource
from difflab.training.session import TrainingRun, open_run
from difflab.training.step import MicroBatch

UPSAMPLER_NETWORK = "unclip-upsampler"


def check_config(c: Config) -> None:
    """ConfigError naming the first key of c an upsampler run cannot take."""
    m, t, u = c.model, c.train, c.model.unclip
    presets.check_network_options("upsampler", m.options)
    check_dataset_options(c.data.dataset, c.data.options)
    require(u.low_size >= 1, "model.unclip.low_size", ">= 1", u.low_size)
    require(0 <= u.aug_max <= 1, "model.unclip.aug_max", "in [0, 1]", u.aug_max)
    require(0 <= u.aug_sample <= 1, "model.unclip.aug_sample", "in [0, 1]", u.aug_sample)
    for key, value, expected in [
        ("model.class_conditional", m.class_conditional, False),
        ("model.latent.vae", m.latent.vae, None),
        ("model.controlnet.base_run", m.controlnet.base_run, None),
        ("model.pretrained", m.pretrained, None),
        ("train.eval_every", t.eval_every, 0),
    ]:
        require(
            value == expected, key, f"{expected!r} with model.network {UPSAMPLER_NETWORK!r}", value
        )


def build_network(model: ModelConfig, in_channels: int, image_size: int) -> nn.Module:
    """The `upsampler` preset for images of in_channels x image_size^2, with model.options."""
    return presets.build_network(
        "upsampler",
        in_channels=in_channels,
        image_size=image_size,
        num_classes=None,
        options=dict(model.options),
    )


class LowResData:
    """A split's DeviceData whose condition is Condition(hint = the images at low_size, noised
    to s, embedding = s [N, 1]), s ~ U[0, aug_max] and the noise drawn from the batch's
    generator (training.data_source.TrainingData)."""

    def __init__(self, data: DeviceData, *, low_size: int, aug_max: float) -> None:
        self.data, self.low_size, self.aug_max = data, low_size, aug_max
        self.images, self.maps, self.batch_size = data.images, data.maps, data.batch_size

    def position(self, micro_index: int) -> tuple[int, int]:
        return self.data.position(micro_index)

    def indices(self, micro_index: int) -> torch.Tensor:
        return self.data.indices(micro_index)

    def take(self, index: torch.Tensor, generator: torch.Generator | None) -> MicroBatch:
        x0 = self.data.take(index, generator).x0  # [N, C, H, W] in [-1, 1]
        s = self.aug_max * torch.rand(x0.shape[0], generator=generator, device=x0.device)
        cond = low_res_condition(low_res(x0, self.low_size), s, generator)
        return MicroBatch(x0=x0, cond=cond)

    def micro_batch(self, micro_index: int, generator: torch.Generator) -> MicroBatch:
        batch = self.take(self.indices(micro_index), generator)
        return batch.part(self.data.rank, self.data.world)


class UpsamplerSource(ImageSource):
    """The image run's source (an unconditional preset run), each split as LowResData."""

    def data(self, device: torch.device, codec: Codec):
        data, val = super().data(device, codec)
        u = self.config.model.unclip
        wrap = partial(LowResData, low_size=u.low_size, aug_max=u.aug_max)
        return wrap(data), wrap(val) if val is not None else None


def open_training_run(config: Config, *, trust_checkpoint: bool = False) -> TrainingRun:
    """The upsampler's run: the trainer's image run with the low-resolution condition."""
    return open_run(config, UpsamplerSource(config), trust_checkpoint=trust_checkpoint)


def grid_draw(run: TrainingRun, rows: range):
    """The grid images of rows: the first held-out (else training) images brought down to
    model.unclip.low_size, cycled, upsampled at model.unclip.aug_sample, seed = row."""
    source = run.val if run.val is not None else run.data
    images = source.data.take(torch.arange(min(rows.stop, len(source.images))), None).x0
    picked = torch.tensor([i % images.shape[0] for i in rows], dtype=torch.long)
    low = low_res(images[picked.to(images.device)], run.config.model.unclip.low_size)
    return partial(_upsampled, low=low, seeds=list(rows), run=run)


def _upsampled(denoiser: Denoiser, *, low: torch.Tensor, seeds: list[int], run: TrainingRun):
    level = run.config.model.unclip.aug_sample
    sample = run.config.sample
    return upsample(denoiser, low, seeds=seeds, sample=sample, level=level, device=run.device)


def prompt_images(run, prompts, **_: Any):
    raise ConfigError(
        f"a {UPSAMPLER_NETWORK} run upsamples images, it does not read text: sample it in a "
        "cascade (difflab sample --prompt TEXT --cascade FOLDER)"
    )


def report_rows(config: dict[str, Any]) -> list[tuple[str, str]]:
    """The rows report.html's "kind of run" table adds for an upsampler's config.yaml."""
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    unclip = model.get("unclip") if isinstance(model.get("unclip"), dict) else {}
    size, aug_max, aug_sample = (unclip.get(k) for k in ("low_size", "aug_max", "aug_sample"))
    return [
        (
            "unCLIP upsampler",
            f"from {size}x{size}, augmentation up to {aug_max}, at {aug_sample} when sampled",
        )
    ]


def conditioning(guidance: Any) -> str:
    """The conditioning report.html names for an upsampler."""
    return "a low-resolution image (noise-augmented)"
