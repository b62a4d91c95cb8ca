"""Stable Diffusion training batches: streamed COCO images and captions, encoded on the device
by the frozen VAE (images -> latents x0) and text encoder (captions -> Condition(text=...)).

Flips are drawn for the whole micro-batch from the step's generator and cut to this rank's
rows, so augmentation does not depend on the world size (as in training/batches.py). The
latents are encoded after the flip: the latents of a mirrored image are not mirrored latents.
A posterior sample (model.latent.sample_posterior) is drawn the same way, from the step's
generator.
"""

from __future__ import annotations

import torch
from torch import Tensor

from difflab.data.transforms import ToSymmetric
from difflab.integrations.stable_diffusion.text import CaptionText
from difflab.latents import VAECodec
from difflab.training.step import MicroBatch
from difflab.training.stream import StreamBatch, StreamingData, collate


class CaptionedLatents:
    """Micro-batches (x0 = VAE latents, cond = CLIP text) of a streamed captioned dataset:
    a TrainingData (training/data_source.py), as training/batches.DeviceData is."""

    def __init__(
        self,
        stream: StreamingData,
        codec: VAECodec,
        text: CaptionText,
        *,
        flip: bool,
        device: torch.device,
    ) -> None:
        self.stream, self.codec, self.text = stream, codec, text
        self.flip, self.device = flip, device
        self.batch_size = stream.batch_size
        self.batches_per_epoch = stream.batches_per_epoch

    def position(self, micro_index: int) -> tuple[int, int]:
        return self.stream.position(micro_index)

    def indices(self, micro_index: int) -> Tensor:
        return self.stream.indices(micro_index)

    def micro_batch(self, micro_index: int, generator: torch.Generator) -> MicroBatch:
        """This rank's part of micro-batch micro_index, encoded."""
        n = self.batch_size // self.stream.world
        rows = slice(self.stream.rank * n, (self.stream.rank + 1) * n)
        return self._encode(self.stream.read(micro_index), generator, rows, self.batch_size)

    def take(self, index: Tensor, generator: torch.Generator | None) -> MicroBatch:
        """The items at `index` (epoch 0's captions), read in this process and encoded."""
        batch = collate([self.stream.dataset[(0, int(i))] for i in index])
        return self._encode(batch, generator, slice(0, len(index)), len(index))

    def _encode(
        self, batch: StreamBatch, generator: torch.Generator | None, rows: slice, total: int
    ) -> MicroBatch:
        x = ToSymmetric()({"image": batch.images.to(self.device)})["image"]  # [n, 3, S, S]
        if self.flip:
            device = generator.device if generator is not None else x.device
            flip = torch.rand(total, generator=generator, device=device)[rows] < 0.5
            x = torch.where(flip.to(x.device).view(-1, 1, 1, 1), x.flip(-1), x)
        x0 = self.codec.encode(x, generator=self._posterior_generators(generator, rows, total))
        cond = self.text.condition(batch.captions)
        return MicroBatch(x0, cond, offset=rows.start, total=total if total != len(x0) else None)

    def _posterior_generators(
        self, generator: torch.Generator | None, rows: slice, total: int
    ) -> list[torch.Generator] | None:
        """One generator per row for the VAE's posterior sample (diffusers takes a list), seeded
        from the step's generator for the whole micro-batch and cut to these rows, so a row's
        latents depend neither on the global RNG nor on the world size; None for the mean."""
        if generator is None or not self.codec.sample_posterior:
            return None
        seeds = torch.randint(2**62, (total,), generator=generator, device=generator.device)
        return [torch.Generator(generator.device).manual_seed(s) for s in seeds[rows].tolist()]
