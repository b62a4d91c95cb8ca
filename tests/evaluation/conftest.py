"""Shared fixtures for the evaluation tests."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on the shared 2-core machine, 2 threads ran training 15x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass
class _Dataset:
    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    name: str
    split: str
    class_names: list[str] = field(default_factory=list)
    skipped: int = 0


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


@pytest.fixture(scope="session")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy(np.round(d.images * 255 / 16).astype(np.uint8))[:, None]
    names = [str(i) for i in range(10)]
    return _Dataset(images, torch.from_numpy(d.target).long(), 10, "digits", "train", names)


def mnist(root: Path, split: str) -> _Dataset:
    prefix = "train" if split == "train" else "t10k"
    images = torch.from_numpy(_idx(root / "mnist" / f"{prefix}-images-idx3-ubyte.gz").copy())
    labels = torch.from_numpy(_idx(root / "mnist" / f"{prefix}-labels-idx1-ubyte.gz").copy())
    names = [str(i) for i in range(10)]
    return _Dataset(images[:, None], labels.long(), 10, "mnist", split, names)


def subset(dataset: _Dataset, index: torch.Tensor, split: str) -> _Dataset:
    return _Dataset(
        dataset.images[index],
        dataset.labels[index],
        dataset.num_classes,
        dataset.name,
        split,
        dataset.class_names,
    )


@pytest.fixture(scope="session")
def digits_split(digits):
    """(train, test): a fixed 1400 / 397 split of the 1797 sklearn digits."""
    perm = torch.randperm(len(digits.images), generator=torch.Generator().manual_seed(0))
    return subset(digits, perm[:1400], "train"), subset(digits, perm[1400:], "test")


@pytest.fixture(scope="session")
def digits_classifier(digits_split):
    from difflab.evaluation import train_classifier

    torch.set_num_threads(1)
    return train_classifier(digits_split[0], steps=200, batch_size=64, lr=3e-3, seed=0)
