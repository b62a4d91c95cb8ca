"""Reference feature statistics of a dataset, computed once and cached on disk as .npz.

The cache key hashes what the statistics depend on: the dataset's name, split, image count,
a sha256 of the image bytes (so a changed or re-ordered dataset misses the cache), and the
feature extractor's name and weights fingerprint. A cached file holds mu, sigma and the
features themselves (float32, for KID).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

from difflab.core.progress import progress
from difflab.data import ImageDataset
from difflab.evaluation.features import FeatureExtractor
from difflab.evaluation.frechet import FeatureStatistics, RunningStatistics


@dataclass(frozen=True)
class ReferenceStatistics:
    """Feature statistics of a reference set, its features [N, D] and its cache key."""

    stats: FeatureStatistics
    features: np.ndarray
    key: str


def compute_statistics(
    extractor: FeatureExtractor, images: Tensor, *, batch_size: int = 256
) -> tuple[FeatureStatistics, np.ndarray]:
    """Statistics and float32 features [N, D] of images, fed to the extractor in batches."""
    running = RunningStatistics()
    chunks = []
    bar = progress(len(images), "features", unit="img", leave=False)
    for chunk in images.split(batch_size):
        features = extractor(chunk).numpy()  # [B, D]
        running.update(features)
        chunks.append(features.astype(np.float32))
        bar.update(len(chunk))
    bar.close()
    return running.result(), np.concatenate(chunks)


def images_sha256(images: Tensor) -> str:
    """Hex sha256 of a tensor's dtype, shape and bytes."""
    digest = hashlib.sha256(f"{images.dtype}:{tuple(images.shape)}".encode())
    digest.update(images.detach().to("cpu").contiguous().numpy().tobytes())
    return digest.hexdigest()


def reference_key(dataset: ImageDataset, extractor: FeatureExtractor) -> str:
    """20 hex chars of sha256(dataset name, split, N, image hash, extractor name, fingerprint)."""
    parts = [
        dataset.name,
        dataset.split,
        len(dataset.images),
        images_sha256(dataset.images),
        extractor.name,
        extractor.fingerprint,
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]


def reference_statistics(
    dataset: ImageDataset,
    extractor: FeatureExtractor,
    *,
    cache_dir: str | Path | None = None,
    batch_size: int = 256,
) -> ReferenceStatistics:
    """Statistics of dataset.images under extractor, read from cache_dir when present there."""
    key = reference_key(dataset, extractor)
    if cache_dir is None:
        stats, features = compute_statistics(extractor, dataset.images, batch_size=batch_size)
        return ReferenceStatistics(stats, features, key)
    name = f"{_slug(dataset.name)}-{_slug(dataset.split)}-{_slug(extractor.name)}-{key}.npz"
    path = Path(cache_dir) / name
    if path.is_file():
        cached = _read_cache(path, key)
        if cached is not None:
            return cached
    stats, features = compute_statistics(extractor, dataset.images, batch_size=batch_size)
    _write_cache(path, ReferenceStatistics(stats, features, key))
    return ReferenceStatistics(stats, features, key)


def _read_cache(path: Path, key: str) -> ReferenceStatistics | None:
    """The cached statistics, or None (with a warning) when the file is unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                raise ValueError(f"key {data['key']} differs from {key}")
            stats = FeatureStatistics(data["mu"], data["sigma"], int(data["num_samples"]))
            return ReferenceStatistics(stats, data["features"], key)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        warnings.warn(
            f"recomputing reference statistics: cache {path} is unreadable ({err})", stacklevel=3
        )
        return None


def _write_cache(path: Path, ref: ReferenceStatistics) -> None:
    """Write the .npz to a temporary name, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(
        tmp,
        key=np.array(ref.key),
        mu=ref.stats.mu,
        sigma=ref.stats.sigma,
        num_samples=np.array(ref.stats.num_samples),
        features=ref.features,
    )
    os.replace(tmp, path)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)
