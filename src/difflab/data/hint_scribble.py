"""Scribble hints: synthesized user scribbles, as the ControlNet paper (Zhang et al. 2023,
Section 4) made them from images: soft edges, thinned to one-pixel curves, then randomly broken
and dilated so they look drawn by hand. The paper's soft edges come from HED (downloaded
weights); difflab thresholds the Sobel gradient of the Gaussian-smoothed grey image.

The random breaks and widths come from the batch transform's generator (the training step's,
seeded per (seed, step)), so training stays exactly resumable; without one, from `seed`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from difflab.data.hints import (
    HINTS,
    batch_image,
    check_range,
    grey_uint8,
    mask_hint,
    optional_module,
)
from difflab.data.transforms import Batch


def soft_edges(image: np.ndarray, sigma: float, threshold: float) -> np.ndarray:
    """Bool [H, W]: |Sobel gradient| of the Gaussian-smoothed image (uint8 [H, W], scaled to
    [0, 1]) above threshold."""
    filters = optional_module("skimage.filters", "scribble hints")
    smooth = filters.gaussian(image.astype(np.float64) / 255.0, sigma=sigma)
    return filters.sobel(smooth) > threshold


def thin(mask: np.ndarray) -> np.ndarray:
    """The one-pixel-wide skeleton of a bool [H, W] mask (skimage.morphology.skeletonize)."""
    return optional_module("skimage.morphology", "scribble hints").skeletonize(mask)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Bool [H, W] mask dilated by a (2 radius + 1)-pixel square (radius 0: unchanged)."""
    cv2 = optional_module("cv2", "scribble hints")
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel) != 0


@HINTS.register("scribble")
@dataclass(frozen=True)
class ScribbleHint:
    """Per image: soft edges (`sigma`, `threshold`), thinned, broken by erasing a 3x3 square at
    a `break_rate` fraction of the skeleton's pixels, then dilated by a radius drawn uniformly
    from 0..max_radius: 1 on the scribble, -1 elsewhere."""

    sigma: float = 1.0
    threshold: float = 0.1
    break_rate: float = 0.05
    max_radius: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        for key, kind, high in (
            ("sigma", float, math.inf),
            ("threshold", float, math.inf),
            ("break_rate", float, 1),
            ("max_radius", int, math.inf),
            ("seed", int, math.inf),
        ):
            check_range("scribble", key, getattr(self, key), kind, 0, high)
        optional_module("skimage.morphology", "scribble hints")

    def __call__(self, batch: Batch, *, generator: torch.Generator | None = None) -> Batch:
        x = batch_image(batch)
        if generator is None:
            generator = torch.Generator().manual_seed(self.seed)
        seeds = torch.randint(2**62, (x.shape[0],), generator=generator, device=generator.device)
        images = grey_uint8(x)
        maps = [self.scribble(im, int(s)) for im, s in zip(images, seeds.tolist(), strict=True)]
        return {**batch, "hint": mask_hint(np.stack(maps), x)}

    def skeleton(self, image: np.ndarray) -> np.ndarray:
        """The thinned soft edges of one grey image (uint8 [H, W]): bool [H, W]."""
        return thin(soft_edges(image, self.sigma, self.threshold))

    def scribble(self, image: np.ndarray, seed: int) -> np.ndarray:
        """One image's scribble (bool [H, W]): its skeleton broken and dilated at random."""
        rng = np.random.default_rng(seed)
        kept = self.skeleton(image)
        ys, xs = np.nonzero(kept)
        breaks = rng.random(len(ys)) < self.break_rate
        cut = np.zeros_like(kept)
        cut[ys[breaks], xs[breaks]] = True
        kept = kept & ~dilate(cut, 1)
        return dilate(kept, int(rng.integers(0, self.max_radius + 1)))

    def channels(self, image_channels: int) -> int:
        """Channels of the hint made from images with image_channels channels."""
        return 1
