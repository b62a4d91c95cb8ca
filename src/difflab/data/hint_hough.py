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


@HINTS.register("hough")
@dataclass(frozen=True)
class HoughHint:
    """Segments from cv2.HoughLinesP (1-pixel, 1-degree accumulator; `threshold` votes, at
    least `min_length` pixels long, gaps up to `max_gap` bridged) on the Canny edges of the grey
    image, drawn 1 pixel wide: 1 on lines, -1 elsewhere."""

    threshold: int = 10
    min_length: int = 8
    max_gap: int = 2
    low_threshold: float = 100.0
    high_threshold: float = 200.0

    def __post_init__(self) -> None:
        require_cv2()
        for key, low in (("threshold", 1), ("min_length", 1), ("max_gap", 0)):
            check_range("hough", key, getattr(self, key), int, low)
        low, high = self.low_threshold, self.high_threshold
        if not (is_number(low, float) and is_number(high, float) and 0 <= low <= high):
            raise ConfigError(f"hough hint thresholds low={low!r}, high={high!r}: 0 <= low <= high")

    def __call__(self, batch: Batch, *, generator: torch.Generator | None = None) -> Batch:
        x = batch_image(batch)
        edges = canny_edges(x, self.low_threshold, self.high_threshold)  # [N, H, W]
        lines = np.stack([self.line_map(e) for e in edges])
        return {**batch, "hint": mask_hint(lines, x)}

    def line_map(self, edges: np.ndarray) -> np.ndarray:
        """The segments found in one edge map (uint8 [H, W]) drawn as a bool [H, W] map."""
        cv2 = require_cv2()
        canvas = np.zeros_like(edges)
        found = cv2.HoughLinesP(
            edges,
            1,
            math.pi / 180,
            self.threshold,
            minLineLength=self.min_length,
            maxLineGap=self.max_gap,
        )
        for x1, y1, x2, y2 in np.zeros((0, 4)) if found is None else found.reshape(-1, 4):
            cv2.line(canvas, (int(x1), int(y1)), (int(x2), int(y2)), 255, 1)
        return canvas != 0

    def channels(self, image_channels: int) -> int:
        """Channels of the hint made from images with image_channels channels."""
        return 1
