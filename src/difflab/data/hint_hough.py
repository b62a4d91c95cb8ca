"""Hough line hints: straight line segments of an image drawn as a one-channel line map.

The ControlNet paper (Zhang et al. 2023) detects lines with M-LSD, a learned detector whose
weights must be downloaded; difflab uses OpenCV's probabilistic Hough transform
(cv2.HoughLinesP, Matas et al. 2000) on Canny edges instead, offline and deterministic. It
finds segments of straight edges only (no learned notion of "wireframe"), so texture edges that
happen to be straight are kept and soft or curved structure is dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from difflab.core.errors import ConfigError
from difflab.data.hints import (
    HINTS,
    batch_image,
    canny_edges,
    check_range,
    is_number,
    mask_hint,
    require_cv2,
)
from difflab.data.transforms import Batch

# Fractions of the image's shorter side that set threshold, min_length and max_gap when they
# are None: the former absolute defaults (10 votes, 8 and 2 pixels) at 32x32, so that smaller
# images get shorter segments (bench/README.md, "Hint fidelity").
THRESHOLD_FRACTION, MIN_LENGTH_FRACTION, MAX_GAP_FRACTION = 10 / 32, 8 / 32, 2 / 32


def scaled(fraction: float, side: int, low: int) -> int:
    """fraction x side rounded half up, at least low."""
    return max(low, math.floor(fraction * side + 0.5))


@HINTS.register("hough")
@dataclass(frozen=True)
class HoughHint:
    """Segments from cv2.HoughLinesP (1-pixel, 1-degree accumulator; `threshold` votes, at
    least `min_length` pixels long, gaps up to `max_gap` bridged) on the Canny edges of the grey
    image, drawn 1 pixel wide: 1 on lines, -1 elsewhere. Each of the three left None is its
    fraction of the image's shorter side (10/32, 8/32, 2/32: 5, 4 and 1 at 16x16)."""

    threshold: int | None = None
    min_length: int | None = None
    max_gap: int | None = None
    low_threshold: float = 100.0
    high_threshold: float = 200.0

    def __post_init__(self) -> None:
        require_cv2()
        for key, low in (("threshold", 1), ("min_length", 1), ("max_gap", 0)):
            if getattr(self, key) is not None:
                check_range("hough", key, getattr(self, key), int, low)
        low, high = self.low_threshold, self.high_threshold
        if not (is_number(low, float) and is_number(high, float) and 0 <= low <= high):
            raise ConfigError(f"hough hint thresholds low={low!r}, high={high!r}: 0 <= low <= high")

    def settings(self, height: int, width: int) -> tuple[int, int, int]:
        """(threshold, min_length, max_gap) for images of height x width: the values set, the
        others their fractions of the shorter side (at least 1, 1 and 0)."""
        side = min(height, width)
        return (
            scaled(THRESHOLD_FRACTION, side, 1) if self.threshold is None else self.threshold,
            scaled(MIN_LENGTH_FRACTION, side, 1) if self.min_length is None else self.min_length,
            scaled(MAX_GAP_FRACTION, side, 0) if self.max_gap is None else self.max_gap,
        )

    def __call__(self, batch: Batch, *, generator: torch.Generator | None = None) -> Batch:
        x = batch_image(batch)
        edges = canny_edges(x, self.low_threshold, self.high_threshold)  # [N, H, W]
        lines = np.stack([self.line_map(e) for e in edges])
        return {**batch, "hint": mask_hint(lines, x)}

    def line_map(self, edges: np.ndarray) -> np.ndarray:
        """The segments found in one edge map (uint8 [H, W]) drawn as a bool [H, W] map."""
        cv2 = require_cv2()
        threshold, min_length, max_gap = self.settings(*edges.shape)
        canvas = np.zeros_like(edges)
        found = cv2.HoughLinesP(
            edges, 1, math.pi / 180, threshold, minLineLength=min_length, maxLineGap=max_gap
        )
        for x1, y1, x2, y2 in np.zeros((0, 4)) if found is None else found.reshape(-1, 4):
            cv2.line(canvas, (int(x1), int(y1)), (int(x2), int(y2)), 255, 1)
        return canvas != 0

    def channels(self, image_channels: int) -> int:
        """Channels of the hint made from images with image_channels channels."""
        return 1
