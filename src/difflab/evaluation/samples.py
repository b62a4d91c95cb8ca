"""Sample files: .npz with arr_0 = uint8 images [N, H, W, C] and optional arr_1 = labels [N].

This is the layout guided-diffusion and EDM write for their FID scripts, so samples made by
either tool can be evaluated by difflab and the other way round.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from difflab.core.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def save_samples_npz(path: str | Path, images: Tensor, labels: Tensor | None = None) -> None:
    """Write uint8 images [N, C, H, W] (and labels [N]) as arr_0 [N, H, W, C] (and arr_1)."""
    path = Path(path)
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise DataError(
            f"samples for {path} must be uint8 [N, C, H, W], got {images.dtype} "
            f"{tuple(images.shape)}"
        )
    arrays = {"arr_0": images.permute(0, 2, 3, 1).cpu().numpy()}  # [N, C, H, W] -> [N, H, W, C]
    if labels is not None:
        arrays["arr_1"] = labels.cpu().numpy().astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_samples_npz(path: str | Path) -> tuple[Tensor, Tensor | None]:
    """uint8 images [N, C, H, W] and long labels [N] (or None) from a samples .npz file.

    Raises DataError naming the file and the problem: missing, not a zip archive, no arr_0,
    arr_0 not uint8 [N, H, W, C] with C in {1, 3}, or arr_1 not one integer label per image.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"samples file {path} not found")
    if not zipfile.is_zipfile(path):
        raise DataError(f"samples file {path} is not an .npz (zip) archive")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files if name in ("arr_0", "arr_1")}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DataError(f"samples file {path} is unreadable: {err}") from err
    images = _check_images(path, arrays.get("arr_0"))
    labels = arrays.get("arr_1")
    if labels is None:
        return images, None
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(images):
        raise DataError(
            f"samples file {path}: arr_1 must hold one integer label per image ({len(images)}), "
            f"got {labels.dtype} {labels.shape}"
        )
    return images, torch.from_numpy(labels.astype(np.int64))


def _check_images(path: Path, arr: np.ndarray | None) -> Tensor:
    if arr is None:
        raise DataError(f"samples file {path} has no arr_0 (uint8 images [N, H, W, C])")
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[3] not in (1, 3) or len(arr) == 0:
        raise DataError(
            f"samples file {path}: arr_0 must be uint8 [N, H, W, C] with N > 0 and C 1 or 3, "
            f"got {arr.dtype} {arr.shape}"
        )
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()  # [N, H, W, C] -> [N, C, H, W]


LABEL_IN_NAME = re.compile(r"_label(-?\d+)$")  # 000003_label7.png, as `difflab sample` writes


def load_samples_folder(folder: str | Path) -> tuple[Tensor, Tensor | None]:
    """uint8 images [N, C, H, W] from the .png/.jpg files of a folder (sorted by name), and
    their labels when every name ends in `_label<k>` (as `difflab sample --format folder`
    writes), else None. Raises DataError when a file is unreadable or the sizes differ."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"samples folder {folder} holds no .png or .jpg images")
    arrays = []
    for path in files:
        try:
            with Image.open(path) as img:
                arrays.append(np.asarray(img.convert("L" if img.mode in ("L", "1") else "RGB")))
        except OSError as err:
            raise DataError(f"sample image {path} is unreadable: {err}") from err
    if len({a.shape for a in arrays}) != 1:
        raise DataError(f"samples folder {folder} holds images of different sizes")
    hwc = np.stack([a[..., None] if a.ndim == 2 else a for a in arrays])  # [N, H, W, C]
    images = torch.from_numpy(hwc).permute(0, 3, 1, 2).contiguous()  # -> [N, C, H, W]
    matches = [LABEL_IN_NAME.search(p.stem) for p in files]
    if not all(matches):
        return images, None
    return images, torch.tensor([int(m.group(1)) for m in matches if m], dtype=torch.long)
