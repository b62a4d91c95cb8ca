"""Tiny captioned datasets in the layouts difflab reads besides COCO 2017 (for tests): the
OpenVINO Training Extensions folder, diffusers' image folder and WebDataset shards. Image i
(1-based) has the pixels and first caption of tiny_coco's image i."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from PIL import Image

from .tiny_coco import caption, image_pixels, write_tiny_coco

SIZES = ((20, 24), (24, 18))


def jpeg(image_id: int) -> bytes:
    h, w = SIZES[image_id % len(SIZES)]
    out = io.BytesIO()
    Image.fromarray(image_pixels(image_id, (h, w))).save(out, format="JPEG", quality=95)
    return out.getvalue()


def write_otx(root: Path, *, split: str = "train", count: int = 6) -> Path:
    """Dataset/images/<split>/, Dataset/annotations/<split>.json and dataset_meta.json."""
    coco = write_tiny_coco(root / "coco", split=split, count=count, sizes=SIZES)
    dataset = root / "Dataset"
    (dataset / "images").mkdir(parents=True)
    (coco / f"{split}2017").rename(dataset / "images" / split)
    (dataset / "annotations").mkdir()
    (coco / "annotations" / f"captions_{split}2017.json").rename(
        dataset / "annotations" / f"{split}.json"
    )
    (dataset / "dataset_meta.json").write_text(json.dumps({"label_names": ["x"]}))
    return dataset


def write_image_folder(root: Path, *, count: int = 6, column: str = "text") -> Path:
    """root/NNN.jpg and root/metadata.jsonl with file_name and `column`."""
    root.mkdir(parents=True)
    lines = []
    for i in range(1, count + 1):
        (root / f"{i:03d}.jpg").write_bytes(jpeg(i))
        lines.append(json.dumps({"file_name": f"{i:03d}.jpg", column: caption(i, 0)}))
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(root: Path, *, count: int = 8, per_shard: int = 3) -> Path:
    """root/shard-000.tar ...: samples NNN.jpg + NNN.txt, per_shard to a shard."""
    root.mkdir(parents=True)
    for start in range(0, count, per_shard):
        with tarfile.open(root / f"shard-{start // per_shard:03d}.tar", "w") as tar:
            for i in range(start + 1, min(count, start + per_shard) + 1):
                add_member(tar, f"{i:03d}.jpg", jpeg(i))
                add_member(tar, f"{i:03d}.txt", caption(i, 0).encode())
    return root
