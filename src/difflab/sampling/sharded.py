"""Generation over all ranks of a torchrun job: each rank samples its shard of the seeds and
rank 0 gathers the images.

Image i uses seed + i, label i and hint i (both cycled) whatever rank draws it, so the gathered
images are those of one process (sampling.generate) for the same seeds.
"""

from __future__ import annotations

import torch
from torch import Tensor

from difflab.config.schema import SampleConfig
from difflab.parallel.distributed import gather_rows, shard_rows
from difflab.runs.load import LoadedRun
from difflab.sampling.generation import generate


def generate_sharded(
    run: LoadedRun,
    *,
    num: int,
    labels: list[int] | None = None,
    sample: SampleConfig | None = None,
    seed: int = 0,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    hints: Tensor | None = None,
    embeddings: Tensor | None = None,
) -> tuple[Tensor, Tensor] | None:
    """generate(run, num=num, ...) split over the ranks: (uint8 images [num, C, H, W], labels
    [num]) on rank 0, None on the others."""
    images, y = generate(run, num=num, labels=labels, sample=sample, seed=seed,
                         batch_size=batch_size, device=device, hints=hints,
                         rows=shard_rows(num), embeddings=embeddings)  # fmt: skip
    gathered = gather_rows(images, num)
    return None if gathered is None else (gathered, y)
