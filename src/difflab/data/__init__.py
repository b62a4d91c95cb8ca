"""Datasets held whole in memory (digits, MNIST, image folders, rendered shapes), batch
transforms and hints."""

from difflab.data import (  # noqa: F401  (each module registers its datasets or hints)
    coco,
    digits,
    hint_depth,
    hint_hough,
    hint_normal,
    hint_scribble,
    hint_segmentation,
    image_folder,
    metadata_jsonl,
    mnist,
    shapes,
    webdataset,
)
from difflab.data.dataset import DATASETS, DatasetLoader, ImageDataset, Split, load_dataset
from difflab.data.hints import HINTS, BlurHint, CannyHint, Hint, make_hint
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
    "HINTS",
    "BatchTransform",
    "BlurHint",
    "CannyHint",
    "Compose",
    "DatasetLoader",
    "Hint",
    "ImageDataset",
    "RandomHorizontalFlip",
    "Resize",
    "Split",
    "ToSymmetric",
    "load_dataset",
    "make_hint",
    "to_uint8",
]
