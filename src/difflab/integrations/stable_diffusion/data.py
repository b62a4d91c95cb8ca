"""Stable Diffusion training batches: streamed COCO images and captions, encoded on the device
by the frozen VAE (images -> latents x0) and text encoder (captions -> Condition(text=...)).

Flips are drawn for the whole micro-batch from the step's generator and cut to this rank's
rows, so augmentation does not depend on the world size (as in training/batches.py). The
latents are encoded after the flip: the latents of a mirrored image are not mirrored latents.
A posterior sample (model.latent.sample_posterior) is drawn the same way, from the step's
generator. A ControlNet run's hint (cond.hint, [n, C_hint, H, W] in [-1, 1] at the images' size)
is made from each image before the flip and flipped with it, row i's randomness from a
generator seeded from the step's generator for the whole micro-batch, so it too does not depend
on the world size and resume repeats it. With data.hints, the hint is the item's ready-made map
(data/hint_maps.MapHint, cropped as its image), flipped with it.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from difflab.data.transforms import BatchTransform, ToSymmetric
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
        hint: BatchTransform | None = None,
    ) -> None:
        self.stream, self.codec, self.text = stream, codec, text
        self.flip, self.device, self.hint = flip, device, hint
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
        flip = None
        if self.flip:
            device = generator.device if generator is not None else x.device
            flip = torch.rand(total, generator=generator, device=device)[rows] < 0.5
            flip = flip.to(x.device).view(-1, 1, 1, 1)
            x_flipped = torch.where(flip, x.flip(-1), x)
        hint = (
            self._hints(_parts(x, batch), generator, rows, total) if self.hint is not None else None
        )
        if flip is not None:
            x = x_flipped
            hint = torch.where(flip, hint.flip(-1), hint) if hint is not None else None
        x0 = self.codec.encode(x, generator=self._posterior_generators(generator, rows, total))
        cond = replace(self.text.condition(batch.captions), hint=hint)
        return MicroBatch(x0, cond, offset=rows.start, total=total if total != len(x0) else None)

    def _hints(
        self, parts: dict[str, Tensor], generator: torch.Generator | None, rows: slice, total: int
    ) -> Tensor:
        """The hints [n, C_hint, H, W] of parts (images [n, 3, S, S] and any hint maps; rows of a
        micro-batch of total): row by row from generators seeded from `generator`, or at once
        from the hint's own seed."""
        assert self.hint is not None
        if generator is None:
            return self.hint(parts)["hint"]
        seeds = torch.randint(2**62, (total,), generator=generator, device=generator.device)
        return torch.cat([
            self.hint(
                {k: v[i : i + 1] for k, v in parts.items()}, generator=_seeded(generator.device, s)
            )["hint"]
            for i, s in enumerate(seeds[rows].tolist())
        ])  # fmt: skip

    def hints(self, index: Tensor) -> Tensor:
        """The hints of the items at `index` (unflipped, the hint's own seed): grid controls."""
        batch = collate([self.stream.dataset[(0, int(i))] for i in index])
        x = ToSymmetric()({"image": batch.images.to(self.device)})["image"]
        return self._hints(_parts(x, batch), None, slice(0, len(index)), len(index))

    def _posterior_generators(
        self, generator: torch.Generator | None, rows: slice, total: int
    ) -> list[torch.Generator] | None:
        """One generator per row for the VAE's posterior sample (diffusers takes a list), seeded
        from the step's generator for the whole micro-batch and cut to these rows, so a row's
        latents depend neither on the global RNG nor on the world size; None for the mean."""
        if generator is None or not self.codec.sample_posterior:
            return None
        seeds = torch.randint(2**62, (total,), generator=generator, device=generator.device)
        return [_seeded(generator.device, s) for s in seeds[rows].tolist()]


def _parts(x: Tensor, batch: StreamBatch) -> dict[str, Tensor]:
    """What a hint is made from: the images x [n, 3, S, S] and the batch's hint maps, if any."""
    if batch.hint_maps is None:
        return {"image": x}
    return {"image": x, "hint_map": batch.hint_maps.to(x.device)}


def _seeded(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device).manual_seed(seed)
