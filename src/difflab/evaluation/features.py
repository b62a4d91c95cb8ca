"""Feature extractors for FID and KID: uint8 images [N, C, H, W] -> float features [N, D].

- ClassifierFeatures: penultimate layer of a difflab-trained Classifier ("difflab-<dataset>").
  Cheap, and it knows the dataset's classes; numbers compare only within difflab.
- InceptionFeatures: pool3 (2048-d) of the Inception-v3 TorchScript file that StyleGAN2-ADA,
  StyleGAN3, EDM and clean-fid use (inception-2015-12-05.pt, a translation of TensorFlow's
  2015-12-05 graph). It is never downloaded: the user passes a local path. The file's own
  forward takes uint8-range images of any size, resizes them to 299x299 with TF1-style
  bilinear interpolation and maps [0, 255] to [-1, 1]; difflab calls it exactly as
  StyleGAN3/EDM do (`model(images, return_features=True)`, grey images repeated to 3 channels),
  so FIDs compare with theirs on the same reference images.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from difflab.core.errors import DataError
from difflab.core.hashing import file_sha256
from difflab.evaluation.classifier import Classifier, images_to_input, weights_fingerprint

INCEPTION_FEATURES = "inception-v3-pool3"


class FeatureExtractor(Protocol):
    """Maps uint8 images [N, C, H, W] to float features [N, D] on the CPU.

    `name` appears in reports and cache keys; `fingerprint` identifies the weights, so cached
    reference statistics are recomputed when the weights change.
    """

    name: str
    fingerprint: str

    def __call__(self, images: Tensor) -> Tensor: ...


class ClassifierFeatures:
    """Penultimate-layer features of a difflab Classifier, named "difflab-<dataset>"."""

    def __init__(
        self, classifier: Classifier, *, batch_size: int = 256, device: torch.device | str = "cpu"
    ) -> None:
        self.classifier = classifier.to(device).eval()
        self.name = f"difflab-{classifier.config.dataset}"
        self.fingerprint = weights_fingerprint(classifier)
        self.batch_size = batch_size
        self.device = device

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        config = self.classifier.config
        return _batched(
            lambda x: self.classifier.features(images_to_input(x, config).to(self.device)),
            images,
            self.batch_size,
        )


class InceptionFeatures:
    """Inception-v3 pool3 features [N, 2048] from a local TorchScript weights file."""

    name = INCEPTION_FEATURES

    def __init__(
        self, path: str | Path, *, batch_size: int = 64, device: torch.device | str = "cpu"
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise DataError(
                f"Inception-v3 weights {path} not found; difflab never downloads them. Place the "
                "TorchScript file inception-2015-12-05.pt (the one StyleGAN2-ADA and clean-fid "
                "publish) there, or use the difflab classifier's features"
            )
        self.fingerprint = file_sha256(path)[:16]
        try:
            with warnings.catch_warnings():
                # torch.jit is deprecated, but TorchScript is the format the FID tools publish.
                warnings.simplefilter("ignore", DeprecationWarning)
                self.model = torch.jit.load(str(path), map_location=device).eval()
        except (RuntimeError, ValueError, OSError) as err:
            raise DataError(f"Inception-v3 weights {path} are no TorchScript file: {err}") from err
        self.batch_size = batch_size
        self.device = device

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise DataError(
                f"Inception features need uint8 images [N, 1 or 3, H, W], got {images.dtype} "
                f"{tuple(images.shape)}"
            )
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)  # grey -> RGB, as StyleGAN3's metrics do
        return _batched(
            lambda x: self.model(x.to(self.device), return_features=True), images, self.batch_size
        )


def _batched(fn: Callable[[Tensor], Tensor], images: Tensor, batch_size: int) -> Tensor:
    """fn over chunks of batch_size images, as float32 [N, D] on the CPU."""
    out = [fn(chunk).float().cpu() for chunk in images.split(batch_size)]
    if not out:
        raise DataError("cannot extract features of an empty image set")
    return torch.cat(out)
