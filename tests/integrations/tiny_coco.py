"""A tiny synthetic COCO Captions folder (the 2017 layout), for tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

WORDS = ["a cat", "a dog", "on a mat", "at the sea", "two cats", "a red car"]


def image_pixels(image_id: int, size: tuple[int, int]) -> np.ndarray:
    """[H, W, 3] uint8 of one image: a distinct colour per id, with a gradient."""
    h, w = size
    ramp = np.linspace(0, 120, w, dtype=np.float64)[None, :, None]
    base = np.array([(37 * image_id) % 128, (71 * image_id) % 128, (13 * image_id) % 128])
    return (base[None, None, :] + ramp + np.zeros((h, 1, 1))).astype(np.uint8)


def caption(image_id: int, k: int) -> str:
    return f"{WORDS[(image_id + k) % len(WORDS)]} {k}"


def write_tiny_coco(
    root: Path, *, split: str = "train", count: int = 6, sizes=((20, 24), (24, 18))
) -> Path:
    """count JPEGs of alternating sizes (H, W), each with 5 captions; image ids 1..count."""
    folder = root / f"{split}2017"
    folder.mkdir(parents=True, exist_ok=True)
    images, notes = [], []
    for image_id in range(1, count + 1):
        h, w = sizes[image_id % len(sizes)]
        name = f"{image_id:012d}.jpg"
        Image.fromarray(image_pixels(image_id, (h, w))).save(folder / name, quality=95)
        images.append({"id": image_id, "file_name": name, "height": h, "width": w})
        for k in range(5):
            notes.append(
                {"id": 100 * image_id + k, "image_id": image_id, "caption": caption(image_id, k)}
            )
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / f"captions_{split}2017.json").write_text(
        json.dumps({"images": images, "annotations": notes})
    )
    return root
