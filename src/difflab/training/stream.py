"""Micro-batches streamed from a dataset too large for memory (captioned images), by
DataLoader workers.

The batch order is that of batches.py: micro-batch m is slice m % B of the permutation of
epoch m // B (B = batches per epoch, the last partial batch dropped), drawn from a generator
seeded by (seed, epoch), so the data position is a function of the step and resume is exact.
Each rank reads only its equal part of each slice. Workers decode ahead of the loop; asking
for a micro-batch other than the next one restarts them there (at the start and on resume).

Items replaced because their image is unreadable are counted over the run: more distinct bad
files than data.max_bad_fraction of the dataset is a DataError, as for image folders.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from difflab.core.errors import ConfigError, DataError
from difflab.data.captioned import CaptionItem
from difflab.runs.rng import seeded_generator

logger = logging.getLogger(__name__)
SHOWN_FILES = 5


@dataclass(frozen=True)
class StreamBatch:
    images: Tensor  # [N, 3, S, S] uint8
    captions: list[str]
    skipped: list[tuple[str, str]]  # (path, reason) of the images replaced in this batch
    hint_maps: Tensor | None = None  # [N, 3, S, S] uint8: data.hints' maps, cropped alike


def collate(items: Sequence[CaptionItem]) -> StreamBatch:
    maps = [item.hint_map for item in items]
    return StreamBatch(
        images=torch.stack([item.image for item in items]),
        captions=[item.caption for item in items],
        skipped=[s for item in items for s in item.skipped],
        hint_maps=None if any(m is None for m in maps) else torch.stack(maps),
    )


class StreamingData:
    """This rank's part of each micro-batch of `batch_size` rows, read by `num_workers`
    DataLoader workers (0: in this process)."""

    def __init__(
        self,
        dataset: torch.utils.data.Dataset,
        *,
        batch_size: int,
        seed: int,
        num_workers: int,
        max_bad_fraction: float,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if batch_size > len(dataset):
            raise DataError(
                f"config key 'train.batch_size' ({batch_size}) exceeds the {len(dataset)} "
                "items of the dataset"
            )
        if batch_size % world:
            raise ConfigError(
                f"config key 'train.batch_size' ({batch_size}) must divide by the world size "
                f"({world})"
            )
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.num_workers, self.max_bad_fraction = num_workers, max_bad_fraction
        self.rank, self.world = rank, world
        self.batches_per_epoch = len(dataset) // batch_size
        self.skipped: dict[str, str] = {}
        self._iterator: Iterator[StreamBatch] | None = None
        self._next = -1
        self._perm: tuple[int, Tensor] | None = None

    def position(self, micro_index: int) -> tuple[int, int]:
        """(epoch, batch within the epoch) of micro-batch number micro_index."""
        return divmod(micro_index, self.batches_per_epoch)

    def indices(self, micro_index: int) -> Tensor:
        """The dataset rows of micro-batch micro_index (all ranks' parts)."""
        epoch, j = self.position(micro_index)
        return self._permutation(epoch)[j * self.batch_size : (j + 1) * self.batch_size]

    def _permutation(self, epoch: int) -> Tensor:
        """The epoch's order, drawn once per epoch (COCO: 118k rows)."""
        if self._perm is None or self._perm[0] != epoch:
            g = seeded_generator(self.seed, "epoch", epoch, torch.device("cpu"))
            self._perm = (epoch, torch.randperm(len(self.dataset), generator=g))
        return self._perm[1]

    def keys(self, micro_index: int) -> list[tuple[int, int]]:
        """(epoch, row) of this rank's part of micro-batch micro_index."""
        epoch, _ = self.position(micro_index)
        n = self.batch_size // self.world
        rows = self.indices(micro_index)[self.rank * n : (self.rank + 1) * n]
        return [(epoch, int(i)) for i in rows]

    def read(self, micro_index: int) -> StreamBatch:
        """This rank's part of micro-batch micro_index."""
        if self._iterator is None or micro_index != self._next:
            self._iterator = iter(self._loader(micro_index))
        batch = next(self._iterator)
        self._next = micro_index + 1
        self._count_skipped(batch.skipped)
        return batch

    def _loader(self, start: int) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=_KeysFrom(self, start),
            num_workers=self.num_workers,
            collate_fn=collate,
            prefetch_factor=2 if self.num_workers else None,
        )

    def _count_skipped(self, skipped: list[tuple[str, str]]) -> None:
        new = [(path, reason) for path, reason in skipped if path not in self.skipped]
        for path, reason in new:
            self.skipped[path] = reason
            logger.info("skipping unreadable image %s: %s", path, reason)  # warned below
        total = len(self.dataset)
        if len(self.skipped) > self.max_bad_fraction * total:
            shown = _shown(list(self.skipped.items()))
            raise DataError(
                f"{len(self.skipped)} of {total} images are unreadable, more than "
                f"data.max_bad_fraction={self.max_bad_fraction}: {shown}"
            )
        if new:
            warnings.warn(f"replaced unreadable images: {_shown(new)}", stacklevel=3)


def _shown(skipped: list[tuple[str, str]]) -> str:
    """The first SHOWN_FILES skipped files and why, for a one-line message."""
    return "; ".join(f"{path} ({reason})" for path, reason in skipped[:SHOWN_FILES])


class _KeysFrom:
    """Batch sampler: the keys of micro-batches start, start + 1, ... without end."""

    def __init__(self, stream: StreamingData, start: int) -> None:
        self.stream, self.start = stream, start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        m = self.start
        while True:
            yield self.stream.keys(m)
            m += 1
