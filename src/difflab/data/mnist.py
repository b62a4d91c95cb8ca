"""MNIST from a folder of the standard IDX files (gzipped or not), optionally downloaded.

IDX layout (LeCun et al., "THE MNIST DATABASE of handwritten digits"): a big-endian int32
magic number (0x08 = unsigned byte, then the number of dimensions: 2051 for images, 2049 for
labels), one big-endian int32 per dimension, then the bytes. A local folder is read as it is,
without checksums (rebuilt copies are fine); only downloads are checked against the official
md5s.
"""

from __future__ import annotations

import gzip
import math
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from difflab.core.errors import DataError
from difflab.data.dataset import DATASETS, ImageDataset, Split, require_folder
from difflab.data.download import download as download_file

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MD5 = {  # of the official .gz files
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
IMAGE_MAGIC = 0x0803  # unsigned byte, 3 dimensions [N, H, W]
LABEL_MAGIC = 0x0801  # unsigned byte, 1 dimension [N]
IMAGE_SIZE = 28


@DATASETS.register("mnist")
def load_mnist(
    *,
    root: Path | None,
    split: Split,
    download: bool,
    max_bad_fraction: float,
    mirrors: Sequence[str] = MIRRORS,
) -> ImageDataset:
    """Images [N, 1, 28, 28] uint8 and labels 0..9; files fetched from `mirrors` if missing.

    `max_bad_fraction` does not apply: a damaged IDX file is an error, not a skipped sample.
    """
    if root is None or not download:
        root = require_folder(root, "mnist")
    images_name, labels_name = FILES[split]
    images = read_idx(_locate(root, images_name, download, mirrors), IMAGE_MAGIC)  # [N, H, W]
    labels = read_idx(_locate(root, labels_name, download, mirrors), LABEL_MAGIC)  # [N]
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{root / images_name}: images are {images.shape[1:]}, expected 28x28")
    if len(images) != len(labels) or labels.max(initial=0) > 9:
        raise DataError(
            f"{root / labels_name}: {len(labels)} labels (max {labels.max(initial=0)}) for "
            f"{len(images)} images; expected one label in 0..9 per image"
        )
    return ImageDataset(
        images=torch.from_numpy(images).unsqueeze(1),  # [N, 1, 28, 28]
        labels=torch.from_numpy(labels).long(),
        num_classes=10,
        class_names=[str(d) for d in range(10)],
        name="mnist",
        split=split,
    )


def _locate(root: Path, name: str, download: bool, mirrors: Sequence[str]) -> Path:
    """root/name.gz or root/name; downloaded as name.gz when missing and `download`."""
    for path in (root / f"{name}.gz", root / name):
        if path.is_file():
            return path
    if not download:
        raise DataError(
            f"MNIST file {root / name}.gz (or un-gzipped {name}) is missing; put the standard "
            "IDX files in data.root or set data.download=true"
        )
    urls = [mirror.rstrip("/") + f"/{name}.gz" for mirror in mirrors]
    return download_file(urls, root / f"{name}.gz", md5=MD5[f"{name}.gz"])


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array stored in IDX file `path` (.gz or raw); DataError if it is not one."""
    data = _read_bytes(path)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: {len(data)} bytes, too short for an IDX header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DataError(f"{path}: IDX magic number {found}, expected {magic}")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != math.prod(shape):
        raise DataError(
            f"{path}: header says {shape} = {math.prod(shape)} bytes, "
            f"file holds {len(data) - header}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
