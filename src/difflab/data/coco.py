"""COCO Captions (Chen et al. 2015), read one item at a time: uint8 [3, S, S] images
(resized, center-cropped) and one caption per (seed, epoch, index); an unreadable image is
replaced by the next readable one and reported. Layout and policy: docs/runs.md."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from difflab.core.errors import DataError
from difflab.data.dataset import require_folder
from difflab.data.decode import open_image_bytes

CocoSplit = Literal["train", "val"]
YEAR = "2017"


@dataclass(frozen=True)
class CocoEntry:
    file: Path
    captions: tuple[str, ...]  # in annotation-id order


@dataclass(frozen=True)
class CocoItem:
    image: Tensor  # [3, S, S] uint8
    caption: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) replaced


def annotation_file(root: Path, split: CocoSplit) -> Path:
    return root / "annotations" / f"captions_{split}{YEAR}.json"


def read_captions(root: Path, split: CocoSplit) -> list[CocoEntry]:
    """The images of a split that have captions, in image-id order."""
    file = annotation_file(root, split)
    if not file.is_file():
        raise DataError(f"COCO captions file not found: {file} (under data.root)")
    try:
        data = json.loads(file.read_text())
        names = {image["id"]: image["file_name"] for image in data["images"]}
        notes = sorted(data["annotations"], key=lambda a: a["id"])
        captions: dict[int, list[str]] = {}
        for note in notes:
            captions.setdefault(note["image_id"], []).append(note["caption"].strip())
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:  # ValueError: JSON
        raise DataError(f"cannot read COCO captions from {file}: {err!r}") from err
    folder = root / f"{split}{YEAR}"
    entries = [
        CocoEntry(folder / names[i], tuple(captions[i])) for i in sorted(names) if i in captions
    ]
    if not entries:
        raise DataError(f"{file} lists no captioned images")
    return entries


def decode_square(path: Path, size: int) -> np.ndarray:
    """[S, S, 3] uint8: shorter side resized to size (bicubic), then center-cropped."""
    with open_image_bytes(path.read_bytes()) as image:
        image = image.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    rw, rh = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((rw, rh), Image.Resampling.BICUBIC)
    left, top = (rw - size) // 2, (rh - size) // 2
    return np.array(image.crop((left, top, left + size, top + size)))


class CocoCaptions(torch.utils.data.Dataset):
    """One COCO split, indexed by (epoch, index): the epoch picks the caption."""

    def __init__(self, root: str | Path, *, split: CocoSplit, image_size: int, seed: int):
        self.root = require_folder(Path(root).expanduser(), "coco")
        self.entries = read_captions(self.root, split)
        self.split, self.image_size, self.seed = split, image_size, seed

    def __len__(self) -> int:
        return len(self.entries)

    def caption_index(self, epoch: int, index: int) -> int:
        """Which of the item's captions epoch `epoch` uses (seeded by seed, epoch, index)."""
        rng = np.random.default_rng([self.seed, epoch, index])
        return int(rng.integers(len(self.entries[index].captions)))

    def __getitem__(self, key: tuple[int, int]) -> CocoItem:
        """The item at (epoch, index), or the next readable one after it."""
        epoch, index = key
        skipped: list[tuple[str, str]] = []
        for k in range(len(self)):
            i = (index + k) % len(self)
            entry = self.entries[i]
            try:
                array = decode_square(entry.file, self.image_size)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
                skipped.append((str(entry.file), f"cannot decode: {err}"))
                continue
            image = torch.from_numpy(array).permute(2, 0, 1).contiguous()  # [3, S, S]
            return CocoItem(image, entry.captions[self.caption_index(epoch, i)], skipped)
        raise DataError(f"no image of {annotation_file(self.root, self.split)} is readable")
