"""Writing uint8 images [N, C, H, W]: one PNG grid, or one PNG per image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from torch import Tensor

from difflab.runs.files import write_atomic


def image_grid(images: Tensor, ncol: int | None = None, pad: int = 1) -> np.ndarray:
    """uint8 [N, C, H, W] -> one uint8 [rows*(H+pad)+pad, ncol*(W+pad)+pad, C] picture."""
    n, c, h, w = images.shape
    ncol = ncol or min(n, 10)
    nrow = -(-n // ncol)
    canvas = np.zeros((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), dtype=np.uint8)
    hwc = images.permute(0, 2, 3, 1).numpy()  # [N, H, W, C]
    for i in range(n):
        r, col = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        canvas[top : top + h, left : left + w] = hwc[i]
    return canvas


def _to_pil(hwc: np.ndarray) -> Image.Image:
    return Image.fromarray(hwc[..., 0] if hwc.shape[-1] == 1 else hwc)


def write_png(hwc: np.ndarray, path: Path) -> None:
    """One PNG, written atomically (RunFileError names the file and the free space)."""
    image = _to_pil(hwc)
    write_atomic(path, lambda tmp: image.save(tmp, format="PNG"))


def write_png_grid(images: Tensor, path: Path, ncol: int | None = None) -> None:
    write_png(image_grid(images, ncol), path)


def write_png_folder(images: Tensor, labels: Tensor, folder: Path) -> None:
    """One PNG per image, named 000000_label3.png (label -1 when unconditional)."""
    for i, (img, y) in enumerate(zip(images, labels.tolist(), strict=True)):
        write_png(img.permute(1, 2, 0).numpy(), folder / f"{i:06d}_label{y}.png")
