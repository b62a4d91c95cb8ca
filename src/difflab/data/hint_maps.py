"""Ready-made hint maps read from image files, not made by a hint transform: paired with a
dataset's images by file name at training time (`data.hints=FOLDER`) and given at sampling time
(`difflab sample --hint-map PATH`). A map must have its image's height and width; its channels
become the hint's (luma of RGB for one channel, grey repeated for three); values u / 127.5 - 1.
Streamed captioned images (Stable Diffusion) pair maps with their image files (`paired_files`),
check sizes from the files' headers, and crop each map with its image (`MapHint`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from PIL import Image
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
    return map_channels(x[None], channels, f"{what} {file}")[0]


def map_channels(x: Tensor, channels: int, where: str) -> Tensor:
    """Maps [N, C', H, W] -> [N, channels, H, W]: as they are, luma of RGB for one channel, grey
    repeated for three; a DataError naming `where` otherwise."""
    if x.shape[1] == channels:
        return x
    if channels == 1:
        return grey(x)
    if x.shape[1] == 1:
        return x.expand(-1, channels, -1, -1)
    raise DataError(f"{where}: a {x.shape[1]}-channel map for {channels}-channel hints")


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
    size = tuple(dataset.images.shape[-2:])
    files = paired_map_files(dataset.files, folder)
    maps = [read_hint_map(file, channels, size, "data.hints") for file in files]
    return replace(dataset, maps={**dataset.maps, "hint": torch.stack(maps)})


def paired_map_files(names: Sequence[str], folder: Path) -> list[Path]:
    """The map of each image name (a path relative to data.root) in `folder`; DataError naming
    the first image without one."""
    if not folder.is_dir():
        raise DataError(f"data.hints={folder}: no such folder")
    files = [paired_file(folder, name) for name in names]
    missing = [name for name, file in zip(names, files, strict=True) if file is None]
    if missing:
        raise DataError(f"data.hints={folder}: no hint map for image {missing[0]}")
    return files


def paired_files(images: Sequence[Path], root: Path, folder: Path) -> list[Path]:
    """The map of each image file under `root` (folder/<its path under root>.<any image
    extension>), checked from the files' headers to have its image's width and height; a
    DataError naming the first image without a map, or the first mis-sized map."""
    try:
        names = [str(Path(image).relative_to(root)) for image in images]
    except (TypeError, ValueError):
        raise DataError(
            f"data.hints={folder}: pairs maps with image files under data.root={root}; "
            "this layout's images are not (a WebDataset's tar members?)"
        ) from None
    files = paired_map_files(names, folder)
    for image, file in zip(images, files, strict=True):
        have, want = header_size(file), header_size(image)
        if have != want:
            raise DataError(
                f"data.hints {file}: a {have[0]}x{have[1]} map for the {want[0]}x{want[1]} "
                f"image {image}"
            )
    return files


def header_size(file: Path) -> tuple[int, int]:
    """(height, width) of an image file, read from its header; DataError naming it."""
    try:
        with Image.open(file) as image:
            return image.height, image.width
    except (OSError, ValueError, SyntaxError) as err:
        raise DataError(f"data.hints: cannot read {file}: {err}") from err


@dataclass(frozen=True)
class ReadyHint:
    """The hint transform of `data.hints`: the batch's ready-made "hint" (the dataset's paired
    maps), checked to be there."""

    def __call__(self, batch: Batch, *, generator: torch.Generator | None = None) -> Batch:
        if "hint" not in batch:
            raise DataError("data.hints: this batch has no paired hint maps (a latent run?)")
        return batch


@dataclass(frozen=True)
class MapHint:
    """The hint transform of maps streamed beside their images: batch["hint_map"] (uint8
    [N, C', H, W], decoded and cropped as its image) as `channels`-channel hints in [-1, 1]."""

    channels: int

    def __call__(self, batch: Batch, *, generator: torch.Generator | None = None) -> Batch:
        if "hint_map" not in batch:
            raise DataError("data.hints: this batch has no paired hint maps")
        x = batch["hint_map"].float() / 127.5 - 1.0
        return {**batch, "hint": map_channels(x, self.channels, "data.hints")}
