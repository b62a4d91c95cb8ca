"""The data source of a training run: what the loop, validation and the logs ask of it."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from difflab.training.step import MicroBatch


class TrainingData(Protocol):
    """Micro-batch m is a function of m and the step's generator, so resume is exact.

    In memory: batches.DeviceData (pixels or a codec's latents); streamed latents: the Stable
    Diffusion plug-in's CaptionedLatents over training/stream.StreamingData."""

    def position(self, micro_index: int) -> tuple[int, int]:
        """(epoch, batch within the epoch) of micro-batch micro_index."""
        ...

    def indices(self, micro_index: int) -> Tensor:
        """The dataset rows of micro-batch micro_index (all ranks' parts)."""
        ...

    def take(self, index: Tensor, generator: torch.Generator | None) -> MicroBatch:
        """The items at `index`, with their randomness from generator."""
        ...

    def micro_batch(self, micro_index: int, generator: torch.Generator) -> MicroBatch:
        """This rank's part of micro-batch micro_index."""
        ...
