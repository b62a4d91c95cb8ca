"""`evaluate`: FID, KID and classifier accuracy of generated images against a reference set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from difflab.core.errors import ConfigError, DataError
from difflab.data import ImageDataset
from difflab.evaluation.classifier import Classifier
from difflab.evaluation.classifier_training import classifier_accuracy
from difflab.evaluation.features import FeatureExtractor
from difflab.evaluation.frechet import fid_min_samples, frechet_distance
from difflab.evaluation.kid import kernel_inception_distance
from difflab.evaluation.reference import compute_statistics, reference_statistics

Metric = Literal["fid", "kid", "accuracy"]
METRICS: tuple[str, ...] = get_args(Metric)


@dataclass(frozen=True)
class EvalOptions:
    """How to evaluate: batch size, KID subsets (Binkowski et al. use 100 of 1000), seed."""

    batch_size: int = 256
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    seed: int = 0
    device: str = "cpu"


def evaluate(
    images: Tensor,
    labels: Tensor | None,
    *,
    reference: ImageDataset | None,
    metrics: list[Metric],
    extractor: FeatureExtractor | None = None,
    classifier: Classifier | None = None,
    cache_dir: str | Path | None = None,
    options: EvalOptions | None = None,
) -> dict[str, Any]:
    """Metrics of uint8 images [N, C, H, W], e.g. {"fid", "kid_mean", "kid_std", "accuracy"}.

    fid and kid compare extractor features with those of reference.images (cached in
    cache_dir); accuracy is the fraction of images the classifier assigns to their requested
    label (labels [N]).
    """
    _check_request(images, labels, reference, metrics, extractor, classifier)
    options = options or EvalOptions()
    result: dict[str, Any] = {"num_samples": len(images)}
    if "fid" in metrics or "kid" in metrics:
        assert extractor is not None and reference is not None  # checked by _check_request
        result.update(_feature_metrics(images, reference, metrics, extractor, cache_dir, options))
    if "accuracy" in metrics:
        assert classifier is not None and labels is not None  # checked by _check_request
        result["accuracy"] = classifier_accuracy(
            classifier, images, labels, batch_size=options.batch_size, device=options.device
        )
    return result


def _feature_metrics(
    images: Tensor,
    reference: ImageDataset,
    metrics: list[Metric],
    extractor: FeatureExtractor,
    cache_dir: str | Path | None,
    options: EvalOptions,
) -> dict[str, Any]:
    batch_size = options.batch_size
    ref = reference_statistics(reference, extractor, cache_dir=cache_dir, batch_size=batch_size)
    stats, features = compute_statistics(extractor, images, batch_size=batch_size)
    out: dict[str, Any] = {
        "features": extractor.name,
        "reference": f"{reference.name}/{reference.split}",
        "reference_size": ref.stats.num_samples,
        "num_features": len(stats.mu),
    }
    if "fid" in metrics:
        out["fid"] = frechet_distance(stats.mu, stats.sigma, ref.stats.mu, ref.stats.sigma)
        out["fid_min_samples"] = fid_min_samples(len(stats.mu))
    if "kid" in metrics:
        kid = kernel_inception_distance(
            features,
            ref.features,
            num_subsets=options.kid_subsets,
            subset_size=options.kid_subset_size,
            seed=options.seed,
        )
        out.update(kid_mean=kid.mean, kid_std=kid.std, kid_subset_size=kid.subset_size)
    return out


def _check_request(
    images: Tensor,
    labels: Tensor | None,
    reference: ImageDataset | None,
    metrics: list[Metric],
    extractor: FeatureExtractor | None,
    classifier: Classifier | None,
) -> None:
    unknown = [m for m in metrics if m not in METRICS]
    if not metrics or unknown:
        raise ConfigError(f"metrics must be a non-empty list of {METRICS}, got {metrics}")
    if images.dtype != torch.uint8 or images.ndim != 4 or len(images) < 2:
        raise DataError(
            f"evaluate needs at least 2 uint8 images [N, C, H, W], got {images.dtype} "
            f"{tuple(images.shape)}"
        )
    if ("fid" in metrics or "kid" in metrics) and (extractor is None or reference is None):
        raise ConfigError("metrics fid and kid need a feature extractor and a reference dataset")
    if "accuracy" in metrics and (classifier is None or labels is None):
        raise ConfigError("metric accuracy needs a classifier and the requested labels")
    if labels is not None and labels.shape != (len(images),):
        raise DataError(f"{len(images)} images but labels of shape {tuple(labels.shape)}")
