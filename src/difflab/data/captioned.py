"""Captioned images for Stable Diffusion fine-tuning, read one item at a time.

A layout (registered in CAPTION_LAYOUTS: coco2017, otx, metadata-jsonl, webdataset) lists a
split's entries, each an image source and its captions; CaptionedImages decodes them on
demand (by DataLoader workers, see training/stream.py). An item is the image resized (shorter
side to image_size, bicubic) and cropped to image_size x image_size as uint8 [3, S, S], and one
of its captions. The caption (and a random crop's corner) is chosen per epoch by a generator
seeded by (seed, epoch, index), so resume is exact. An unreadable or missing image is replaced
by the next readable item and reported in the item's `skipped`; the caller counts them against
data.max_bad_fraction (the policy of image_folder.py). With `hint_files` (data.hints, one
ready-made map per entry, of its image's size), an item also holds its map, resized and
cropped as its image (an unreadable map skips the item as an unreadable image does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from difflab.core.errors import DataError
from difflab.core.registry import Registry
from difflab.data.decode import open_image_bytes

Crop = Literal["center", "random"]
AUTO = "coco"  # data.dataset of a fine-tune whose layout is found from data.root


class ImageSource(Protocol):
    """A file (pathlib.Path) or a tar member: its bytes, and str() names it in messages."""

    def read_bytes(self) -> bytes: ...


@dataclass(frozen=True)
class CaptionEntry:
    file: ImageSource
    captions: tuple[str, ...]  # in the layout's order; empty: the item is skipped


@dataclass(frozen=True)
class CaptionItem:
    image: Tensor  # [3, S, S] uint8
    caption: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) replaced
    hint_map: Tensor | None = None  # [3, S, S] uint8: the item's ready-made map, cropped alike


@dataclass(frozen=True)
class CaptionOptions:
    """What a layout reads: the split and the caption column of a metadata.jsonl."""

    split: str = "train"
    caption_column: str = "text"


@dataclass(frozen=True)
class CaptionLayout:
    """detect(root): does data.root look like this layout; read(root, options): its entries
    (a DataError naming the file when malformed)."""

    detect: Callable[[str], bool]
    read: Callable[[str, CaptionOptions], list[CaptionEntry]]
    looks_like: str  # for the message when no layout matches


CAPTION_LAYOUTS: Registry[CaptionLayout] = Registry("captioned data layout")


def read_entries(root: str, dataset: str, options: CaptionOptions) -> list[CaptionEntry]:
    """The entries of data.root in layout `dataset`, or in the first layout that detects it
    for data.dataset 'coco' (the fine-tune recipes' default)."""
    if dataset != AUTO:
        return CAPTION_LAYOUTS.get(dataset).read(root, options)
    for name in CAPTION_LAYOUTS:
        layout = CAPTION_LAYOUTS.get(name)
        if layout.detect(root):
            return layout.read(root, options)
    expected = "; ".join(f"{n}: {CAPTION_LAYOUTS.get(n).looks_like}" for n in CAPTION_LAYOUTS)
    raise DataError(f"data.root {root} is no captioned data layout difflab reads ({expected})")


def decode_square(source: ImageSource, size: int, corner: tuple[float, float] = (0.5, 0.5)):
    """[S, S, 3] uint8: shorter side resized to size (bicubic), then the S x S crop whose
    top-left corner is `corner` (fractions of the slack; 0.5, 0.5: center-cropped)."""
    with open_image_bytes(source.read_bytes()) as image:
        image = image.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    rw, rh = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((rw, rh), Image.Resampling.BICUBIC)
    left, top = round((rw - size) * corner[0] - 1e-9), round((rh - size) * corner[1] - 1e-9)
    return np.array(image.crop((left, top, left + size, top + size)))


class CaptionedImages(torch.utils.data.Dataset):
    """A split's entries, indexed by (epoch, index): the epoch picks the caption and crop."""

    def __init__(
        self,
        entries: list[CaptionEntry],
        *,
        name: str,
        image_size: int,
        seed: int,
        crop: Crop = "center",
        hint_files: Sequence[Path] | None = None,
    ) -> None:
        if not entries:
            raise DataError(f"{name} lists no captioned images")
        self.entries, self.name = entries, name
        self.image_size, self.seed, self.crop = image_size, seed, crop
        self.hint_files = hint_files

    def __len__(self) -> int:
        return len(self.entries)

    def _rng(self, epoch: int, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, index])

    def caption_index(self, epoch: int, index: int) -> int:
        """Which of the item's captions epoch `epoch` uses (seeded by seed, epoch, index)."""
        return int(self._rng(epoch, index).integers(len(self.entries[index].captions)))

    def corner(self, epoch: int, index: int) -> tuple[float, float]:
        """The crop's corner as fractions of the slack: center, or uniform (seeded)."""
        if self.crop == "center":
            return 0.5, 0.5
        rng = self._rng(epoch, index)
        rng.integers(max(1, len(self.entries[index].captions)))  # the caption's draw
        return float(rng.random()), float(rng.random())

    def __getitem__(self, key: tuple[int, int]) -> CaptionItem:
        """The item at (epoch, index), or the next readable one after it."""
        epoch, index = key
        skipped: list[tuple[str, str]] = []
        for k in range(len(self)):
            i = (index + k) % len(self)
            entry = self.entries[i]
            if not entry.captions:
                skipped.append((str(entry.file), "no readable caption"))
                continue
            try:
                image, hint_map = self._decode(epoch, i)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
                skipped.append((str(entry.file), f"cannot decode: {err}"))
                continue
            caption = entry.captions[self.caption_index(epoch, i)]
            return CaptionItem(image, caption, skipped, hint_map)
        raise DataError(f"no image of {self.name} is readable")

    def _decode(self, epoch: int, index: int) -> tuple[Tensor, Tensor | None]:
        """Item index's image [3, S, S] uint8 and its hint map (cropped alike) or None."""
        corner = self.corner(epoch, index)
        image = _chw(decode_square(self.entries[index].file, self.image_size, corner))
        if self.hint_files is None:
            return image, None
        return image, _chw(decode_square(self.hint_files[index], self.image_size, corner))


def _chw(array: np.ndarray) -> Tensor:
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()  # [H, W, 3] -> [3, H, W]
