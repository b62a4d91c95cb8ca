"""A folder of images, one sub-folder per class: root/<split>/<class>/* or root/<class>/*.

Images are decoded by a thread pool (PIL releases the GIL while decoding) and held whole in
memory at their native size, which must be the same for all unless `image_size` resizes them.
16-bit grey images are scaled to 8 bits; colour images among grey ones make every image 3-channel,
with a warning naming them. Unreadable files (empty, corrupt, truncated, not regular files such
as a FIFO or a link to a device) are skipped, named in a warning and recorded in
`ImageDataset.skipped`; more than `max_bad_fraction` of them is an error. With `cache_dir`,
the decoded arrays are kept in a .npz keyed by the files' names, sizes and mtimes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from difflab.core.errors import DataError
from difflab.data.dataset import DATASETS, ImageDataset, Split, require_folder
from difflab.data.decode import open_image_bytes

logger = logging.getLogger(__name__)
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
GREY_MODES = ("1", "L", "LA")
SIXTEEN_BIT_GREY = ("I;16", "I;16B", "I;16L", "I")  # PIL's modes of a 16-bit grey PNG
FILES_PER_TASK = 256
CACHE_VERSION = 1
SHOWN_FILES = 5  # how many skipped files an error or summary warning names

Size = tuple[int, int]  # (H, W)


@dataclass(frozen=True)
class Decoded:
    """The readable images of a listing and the files that were not."""

    images: np.ndarray  # [N, C, H, W] uint8
    labels: np.ndarray  # [N] int64
    skipped: list[tuple[str, str]]  # (path, reason)


@DATASETS.register("image-folder")
def load_image_folder(
    *,
    root: Path | None,
    split: Split,
    download: bool,
    max_bad_fraction: float,
    image_size: int | tuple[int, int] | None = None,
    cache_dir: str | Path | None = None,
    num_workers: int | None = None,
) -> ImageDataset:
    """Classes are the sorted sub-folder names; grey images stay 1-channel unless mixed with RGB.

    `image_size` (int: square, or (H, W)) resizes every image; `download` does not apply.
    """
    base = require_folder(root, "image-folder")
    folder = _split_folder(base, split)
    class_names, files, labels = list_images(folder)
    size = _as_size(image_size)
    cache = None if cache_dir is None else _cache_file(Path(cache_dir), folder, files, size)
    decoded = _read_cache(cache) if cache is not None and cache.is_file() else None
    if decoded is None:
        decoded = decode_images(files, labels, size, num_workers)
        if cache is not None:
            _write_cache(cache, decoded)
    _check_skipped(folder, decoded.skipped, len(files), max_bad_fraction)
    skipped = {path for path, _ in decoded.skipped}
    return ImageDataset(
        images=torch.from_numpy(decoded.images),
        labels=torch.from_numpy(decoded.labels).long(),
        num_classes=len(class_names),
        class_names=class_names,
        name=folder.parent.name if folder.name == split else folder.name,
        split=split,
        skipped=decoded.skipped,
        files=[str(p.relative_to(base)) for p in files if str(p) not in skipped],
    )


def _split_folder(root: Path, split: Split) -> Path:
    """root/<split> when root has split folders; else root itself, as the train split only."""
    if any((root / s).is_dir() for s in ("train", "test")):
        if not (root / split).is_dir():
            raise DataError(f"image folder {root} (data.root) has no {split!r} folder")
        return root / split
    if split != "train":
        raise DataError(
            f"image folder {root} (data.root) has no train/test folders, so it is the train "
            f"split only; add {root / split} to evaluate on held-out images"
        )
    return root


def list_images(folder: Path) -> tuple[list[str], list[Path], list[int]]:
    """(class names sorted, image files, their class indices) of folder/<class>/*."""
    class_names = sorted(
        p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    files, labels = [], []
    for index, name in enumerate(class_names):
        found = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in EXTENSIONS)
        files += found
        labels += [index] * len(found)
    if not files:
        raise DataError(
            f"image folder {folder} holds no images: expected {folder}/<class>/*"
            f"{{{','.join(EXTENSIONS)}}}"
        )
    return class_names, files, labels


def _as_size(image_size: int | Sequence[int] | None) -> Size | None:
    if image_size is None:
        return None
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    return int(h), int(w)


def decode_images(
    files: Sequence[Path], labels: Sequence[int], size: Size | None, num_workers: int | None
) -> Decoded:
    """Decode all files on a thread pool; stack those that decode (all of one size)."""
    workers = num_workers or min(16, os.cpu_count() or 1)
    chunks = [files[i : i + FILES_PER_TASK] for i in range(0, len(files), FILES_PER_TASK)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = [r for part in pool.map(_decode_many, chunks, [size] * len(chunks)) for r in part]
    good, good_labels, skipped = [], [], []
    for path, result, label in zip(files, results, labels, strict=True):
        if isinstance(result, str):
            skipped.append((str(path), result))
        else:
            good.append((path, result))
            good_labels.append(label)
    return Decoded(_stack(good), np.array(good_labels, np.int64), skipped)


def _stack(good: list[tuple[Path, np.ndarray]]) -> np.ndarray:
    """[N, C, H, W] from [H, W] / [H, W, 3] arrays; grey ones repeated to 3 when mixed."""
    if not good:
        return np.zeros((0, 1, 1, 1), np.uint8)
    colour = [str(path) for path, array in good if array.ndim == 3]
    channels = 3 if colour else 1
    if colour and len(colour) < len(good):
        _warn_mixed(colour, [str(path) for path, array in good if array.ndim == 2])
    first, shape = good[0][0], good[0][1].shape[:2]
    return np.stack([_to_chw(path, array, channels, shape, first) for path, array in good])


def _warn_mixed(colour: list[str], grey: list[str]) -> None:
    """Say that colour images make the whole dataset 3-channel, naming the fewer kind."""
    kind, fewer = ("colour", colour) if len(colour) <= len(grey) else ("grey", grey)
    warnings.warn(
        f"{len(colour)} colour and {len(grey)} grey images: every image is made 3-channel "
        f"(grey repeated); the {kind} ones: {', '.join(fewer[:SHOWN_FILES])}",
        stacklevel=5,
    )


def _decode_many(paths: Sequence[Path], size: Size | None) -> list[np.ndarray | str]:
    return [_decode(path, size) for path in paths]


def _read_regular(path: Path) -> bytes | str:
    """The bytes of path, or why it is not read: a FIFO, device or socket (a symlink to
    /dev/zero) is never read, opened without blocking and checked with fstat first."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "not a regular file"
        return f.read()  # one read: PIL's many small reads of a file cost more


def _as_8bit(image: Image.Image) -> Image.Image:
    """image as "L" or "RGB"; 16-bit grey scaled to 8 bits, round(x / 257), not clipped."""
    if image.mode in SIXTEEN_BIT_GREY:
        wide = np.clip(np.asarray(image, dtype=np.int64), 0, 65535)
        return Image.fromarray(((wide + 128) // 257).astype(np.uint8))
    return image.convert("L" if image.mode in GREY_MODES else "RGB")


def _decode(path: Path, size: Size | None) -> np.ndarray | str:
    """[H, W] (grey) or [H, W, 3] uint8, or why the file cannot be read."""
    try:
        data = _read_regular(path)
        if isinstance(data, str) or not data:
            return data or "empty file"
        with open_image_bytes(data) as image:
            image = _as_8bit(image)
        if size is not None and image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), Image.Resampling.BICUBIC)
        return np.asarray(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return f"cannot decode: {exc}"


def _to_chw(path: Path, array: np.ndarray, channels: int, shape: tuple[int, ...], first: Path):
    """[H, W] or [H, W, 3] -> [C, H, W], checking the size against the first image's."""
    if array.shape[:2] != shape:
        raise DataError(
            f"{path}: image is {array.shape[0]}x{array.shape[1]} (HxW), expected "
            f"{shape[0]}x{shape[1]} like {first}; set data.image_size to resize all images"
        )
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], channels, axis=2)  # [H, W, C]
    return array.transpose(2, 0, 1)  # [C, H, W]


def _check_skipped(
    folder: Path, skipped: list[tuple[str, str]], total: int, max_bad_fraction: float
) -> None:
    shown = "; ".join(f"{path} ({reason})" for path, reason in skipped[:SHOWN_FILES])
    if len(skipped) == total or len(skipped) > max_bad_fraction * total:
        raise DataError(
            f"{len(skipped)} of {total} images in {folder} are unreadable, more than "
            f"data.max_bad_fraction={max_bad_fraction}: {shown}"
        )
    for path, reason in skipped:  # the warning below names the first SHOWN_FILES
        logger.info("skipping unreadable image %s: %s", path, reason)
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} of {total} unreadable images in {folder}: {shown}",
            stacklevel=4,
        )


def _cache_file(cache_dir: Path, folder: Path, files: Sequence[Path], size: Size | None) -> Path:
    """cache_dir/<folder>-<hash of version, folder, size and each file's name, size, mtime>."""
    stats = [(str(p.relative_to(folder)), *_size_mtime(p)) for p in files]
    key = json.dumps([CACHE_VERSION, str(folder.resolve()), size, stats])
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return cache_dir / f"{folder.parent.name}-{folder.name}-{digest}.npz"


def _size_mtime(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _read_cache(cache: Path) -> Decoded | None:
    try:
        with np.load(cache, allow_pickle=False) as data:
            skipped = [(str(p), str(r)) for p, r in data["skipped"].reshape(-1, 2)]
            return Decoded(data["images"], data["labels"], skipped)
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("ignoring unreadable cache %s: %s", cache, exc)
        return None


def _write_cache(cache: Path, decoded: Decoded) -> None:
    """Write to a temporary file, then rename, so a cache file is always complete."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.part")
    skipped = np.array(decoded.skipped, dtype=str).reshape(-1, 2)
    with tmp.open("wb") as f:
        np.savez(f, images=decoded.images, labels=decoded.labels, skipped=skipped)
    os.replace(tmp, cache)
