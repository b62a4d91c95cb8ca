"""Datasets held whole in memory (digits, MNIST, image folders) and batch transforms."""

from difflab.data import digits, image_folder, mnist  # noqa: F401  (register)
from difflab.data.dataset import DATASETS, DatasetLoader, ImageDataset, Split, load_dataset
from difflab.data.transforms import (
    BatchTransform,
    Compose,
    RandomHorizontalFlip,
    Resize,
    ToSymmetric,
    to_uint8,
)

__all__ = [
    "DATASETS",
    "BatchTransform",
    "Compose",
    "DatasetLoader",
    "ImageDataset",
    "RandomHorizontalFlip",
    "Resize",
    "Split",
    "ToSymmetric",
    "load_dataset",
    "to_uint8",
]
