"""Generation over all ranks of a torchrun job: each rank samples its shard of the seeds and
rank 0 gathers the images.

Image i uses seed + i and label i (cycled) whatever rank draws it, so the gathered images are
those of one process (generation.generate) for the same seeds.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from difflab.conditioning import NULL_LABEL
from difflab.generation import LoadedRun, generate, resolve_labels
from difflab.training.distributed import gather_rows, shard_rows


def generate_sharded(
    run: LoadedRun,
    *,
    num: int,
    labels: list[int] | None = None,
    seed: int = 0,
    **options: Any,
) -> tuple[Tensor, Tensor] | None:
    """generate(run, num=num, labels=labels, seed=seed, **options) split over the ranks:
    (uint8 images [num, C, H, W], labels [num]) on rank 0, None on the others."""
    rows = shard_rows(num)
    y = resolve_labels(labels, rows.stop, run.num_classes)  # cycled on past num: padding
    images, _ = generate(
        run,
        num=len(rows),
        labels=None if y is None else y[rows.start :].tolist(),
        seed=seed + rows.start,
        **options,
    )
    gathered = gather_rows(images, num)
    if gathered is None:
        return None
    y = resolve_labels(labels, num, run.num_classes)
    out_labels = y if y is not None else torch.full((num,), NULL_LABEL, dtype=torch.long)
    return gathered, out_labels
