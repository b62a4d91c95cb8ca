"""Ready-made hint maps read from image files, not made by a hint transform: paired with a
dataset's images by file name at training time (`data.hints=FOLDER`) and given at sampling time
(`difflab sample --hint-map PATH`). A map must have its image's height and width; its channels
become the hint's (luma of RGB for one channel, grey repeated for three); values u / 127.5 - 1.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from difflab.core.errors import DataError
from difflab.data.dataset import ImageDataset
from difflab.data.hints import grey
from difflab.data.image_folder import EXTENSIONS, decode_images
from difflab.data.transforms import Batch


def read_hint_map(file: Path, channels: int, size: tuple[int, int], what: str) -> Tensor:
    """One map file as float [channels, H, W] in [-1, 1]; a one-line DataError, prefixed with
    `what` (the key or flag), names an unreadable, mis-sized or wrongly coloured file."""
    decoded = decode_images([file], [0], None, num_workers=1)
    if decoded.skipped:
        raise DataError(f"{what} {file}: {decoded.skipped[0][1]}")
    x = torch.from_numpy(decoded.images[0]).float() / 127.5 - 1.0  # [C', H, W]
    if tuple(x.shape[1:]) != tuple(size):
        raise DataError(
            f"{what} {file}: a {x.shape[1]}x{x.shape[2]} map for {size[0]}x{size[1]} images"
        )
    if x.shape[0] == channels:
        return x
    if channels == 1:
        return grey(x[None])[0]
    if x.shape[0] == 1:
        return x.expand(channels, -1, -1)
    raise DataError(f"{what} {file}: a {x.shape[0]}-channel map for {channels}-channel hints")


def paired_file(folder: Path, name: str) -> Path | None:
    """The map in `folder` for the image named `name` (a path relative to the data root): the
    same relative path with any image extension, or None."""
    stem = folder / Path(name).with_suffix("")
    found = [stem.with_suffix(ext) for ext in EXTENSIONS if stem.with_suffix(ext).is_file()]
    return found[0] if found else None


def with_hint_maps(dataset: ImageDataset, folder: Path, channels: int) -> ImageDataset:
    """The dataset with maps["hint"] (float [N, channels, H, W]) read from `folder` by each
    image's file name; DataError naming the first image without a map."""
    if not dataset.files:
        raise DataError(
            f"data.hints={folder}: dataset {dataset.name!r} has no image files to pair maps "
            "with by name (use the image-folder dataset)"
        )
    if not folder.is_dir():
        raise DataError(f"data.hints={folder}: no such folder")
    size = tuple(dataset.images.shape[-2:])
    maps = []
    for name in dataset.files:
        file = paired_file(folder, name)
        if file is None:
            raise DataError(f"data.hints={folder}: no hint map for image {name}")
        maps.append(read_hint_map(file, channels, size, "data.hints"))
    return replace(dataset, maps={**dataset.maps, "hint": torch.stack(maps)})


@dataclass(frozen=True)
class ReadyHint:
    """The hint transform of `data.hints`: the batch's ready-made "hint" (the dataset's paired
    maps), checked to be there."""

    def __call__(self, batch: Batch, *, generator: torch.Generator | None = None) -> Batch:
        if "hint" not in batch:
            raise DataError("data.hints: this batch has no paired hint maps (a latent run?)")
        return batch
