"""COCO Captions (Chen et al. 2015): images with five captions each, in two layouts.

coco2017, as the 2017 release unpacks under data.root:

    annotations/captions_train2017.json   annotations/captions_val2017.json
    train2017/*.jpg                       val2017/*.jpg

otx, the OpenVINO Training Extensions diffusion dataset (the same COCO captions JSON):

    annotations/<split>.json              images/<split>/*.jpg
    dataset_meta.json                     (optional: custom labels, unused by text-to-image)

The items are read by data/captioned.CaptionedImages.
"""

from __future__ import annotations

import json
from pathlib import Path

from difflab.core.errors import DataError
from difflab.data.captioned import (
    CAPTION_LAYOUTS,
    CaptionedImages,
    CaptionEntry,
    CaptionLayout,
    CaptionOptions,
    decode_square,
)
from difflab.data.dataset import require_folder

__all__ = ["CocoCaptions", "decode_square", "read_captions", "read_coco_json"]
YEAR = "2017"


def annotation_file(root: Path, split: str) -> Path:
    return root / "annotations" / f"captions_{split}{YEAR}.json"


def read_coco_json(file: Path, folder: Path) -> list[CaptionEntry]:
    """The images of a COCO captions file that have captions, in image-id order, their files
    under `folder`; a DataError naming the file when it is missing or malformed."""
    if not file.is_file():
        raise DataError(f"COCO captions file not found: {file} (under data.root)")
    try:
        data = json.loads(file.read_text())
        names = {image["id"]: image["file_name"] for image in data["images"]}
        notes = sorted(data["annotations"], key=lambda a: a["id"])
        captions: dict[int, list[str]] = {}
        for note in notes:
            text = note["caption"]
            if not isinstance(text, str):
                raise TypeError(f"annotation {note['id']}: caption {text!r} is not a string")
            captions.setdefault(note["image_id"], []).append(text.strip())
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:  # ValueError: JSON
        raise DataError(f"cannot read COCO captions from {file}: {err!r}") from err
    entries = [
        CaptionEntry(folder / names[i], tuple(captions[i])) for i in sorted(names) if i in captions
    ]
    if not entries:
        raise DataError(f"{file} lists no captioned images")
    return entries


def read_captions(root: Path, split: str) -> list[CaptionEntry]:
    """The captioned images of a split of the 2017 release."""
    if split not in ("train", "val"):
        raise DataError(f"config key 'data.split' must be 'train' or 'val' for COCO, got {split!r}")
    return read_coco_json(annotation_file(root, split), root / f"{split}{YEAR}")


class CocoCaptions(CaptionedImages):
    """One split of the 2017 release, indexed by (epoch, index)."""

    def __init__(self, root: str | Path, *, split: str, image_size: int, seed: int):
        self.root = require_folder(Path(root).expanduser(), "coco")
        entries = read_captions(self.root, split)
        super().__init__(
            entries, name=str(annotation_file(self.root, split)), image_size=image_size, seed=seed
        )


def _is_coco2017(root: str) -> bool:
    return any(annotation_file(Path(root), s).is_file() for s in ("train", "val"))


def _read_coco2017(root: str, options: CaptionOptions) -> list[CaptionEntry]:
    return read_captions(require_folder(Path(root), "coco2017"), options.split)


def _is_otx(root: str) -> bool:
    folder = Path(root)
    return (folder / "annotations").is_dir() and (folder / "images").is_dir()


def _read_otx(root: str, options: CaptionOptions) -> list[CaptionEntry]:
    folder = require_folder(Path(root), "otx")
    meta = folder / "dataset_meta.json"
    if meta.is_file():
        try:
            json.loads(meta.read_text())
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read {meta}: {err!r}") from err
    file = folder / "annotations" / f"{options.split}.json"
    return read_coco_json(file, folder / "images" / options.split)


CAPTION_LAYOUTS.register("coco2017")(
    CaptionLayout(_is_coco2017, _read_coco2017, "annotations/captions_train2017.json")
)
CAPTION_LAYOUTS.register("otx")(
    CaptionLayout(_is_otx, _read_otx, "images/<split>/ and annotations/<split>.json")
)
