"""Evaluation classifiers trained on demand and cached on disk, one per dataset and setting.

The cache lives under `cache_root()` (the DIFFLAB_CACHE environment variable, else
~/.cache/difflab) in classifiers/<dataset>-<key>, where the key hashes the training images
(so a changed dataset trains a new classifier) and the training settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from difflab.data import ImageDataset
from difflab.data.transforms import Resize
from difflab.evaluation.classifier import (
    CONFIG_FILE,
    Classifier,
    load_classifier,
    save_classifier,
)
from difflab.evaluation.classifier_training import train_classifier
from difflab.evaluation.reference import images_sha256

CACHE_ENV = "DIFFLAB_CACHE"
DEFAULT_CACHE = "~/.cache/difflab"


def cache_root(given: str | Path | None = None) -> Path:
    """The folder for difflab's caches: `given`, else $DIFFLAB_CACHE, else ~/.cache/difflab."""
    root = given if given is not None else os.environ.get(CACHE_ENV, DEFAULT_CACHE)
    return Path(root).expanduser()


def classifier_dir(
    dataset: ImageDataset, settings: dict[str, Any], cache: Path, kind: str = "classifiers"
) -> Path:
    """cache/<kind>/<dataset>-<12 hex chars of sha256(name, split, images, settings)>."""
    parts = [dataset.name, dataset.split, images_sha256(dataset.images), sorted(settings.items())]
    key = hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset.name)
    return cache / kind / f"{slug}-{key}"


def cached_classifier(
    dataset: ImageDataset,
    *,
    cache: Path,
    steps: int | None = None,
    device: torch.device | str = "cpu",
) -> tuple[Classifier, Path, bool]:
    """(classifier, its folder, whether it was trained now) for a clean-image classifier of
    dataset: loaded from the cache, or trained with train_classifier's defaults (or `steps`)
    and saved there."""
    settings = {} if steps is None else {"steps": steps}
    folder = classifier_dir(dataset, settings, cache)
    if (folder / CONFIG_FILE).is_file():
        return load_classifier(folder, device), folder, False
    classifier = train_classifier(dataset, device=device, **settings)
    save_classifier(classifier, folder)
    return classifier, folder, True


def at_size(dataset: ImageDataset, size: int) -> ImageDataset:
    """The dataset with its images resized to size x size (unchanged when they already are)."""
    if dataset.images.shape[-1] == size and dataset.images.shape[-2] == size:
        return dataset
    images = Resize(size)({"image": dataset.images})["image"]
    return replace(dataset, images=images)
