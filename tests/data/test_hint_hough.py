"""Hough hints: a drawn straight line is found, along its length and nowhere else."""

import importlib.util

import numpy as np
import pytest
import torch

from difflab.core.errors import ConfigError
from difflab.data import make_hint

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("cv2") is None, reason="OpenCV is absent (difflab[hints])"
)


def distance_to_segment(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance of each point [K, 2] to the segment a-b."""
    t = np.clip(((points - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
    return np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=1)


def test_hough_draws_the_drawn_line_and_nothing_else():
    import cv2

    canvas = np.zeros((32, 32), np.uint8)
    a, b = np.array([4.0, 6.0]), np.array([27.0, 22.0])  # (x, y)
    cv2.line(canvas, (4, 6), (27, 22), 255, 2)
    image = torch.from_numpy(canvas).float()[None, None] / 127.5 - 1.0
    hint = make_hint("hough")({"image": image.expand(2, 3, 32, 32)})["hint"]
    assert hint.shape == (2, 1, 32, 32) and set(hint.unique().tolist()) == {-1.0, 1.0}
    ys, xs = np.nonzero(hint[0, 0].numpy() > 0)
    points = np.stack([xs, ys], axis=1).astype(float)
    assert distance_to_segment(points, a, b).max() <= 3.0  # its two edges, 2-3 pixels apart
    along = (points - a) @ (b - a) / np.linalg.norm(b - a)  # position along the line
    assert along.min() <= 3 and along.max() >= np.linalg.norm(b - a) - 3  # its whole length
    assert torch.equal(hint[0], hint[1])


def test_hough_of_scattered_dots_and_of_a_flat_image_has_no_lines():
    dots = -torch.ones(1, 1, 32, 32)
    dots[0, 0, ::7, ::9] = 1.0  # isolated points: edges, but no straight segment of 8 pixels
    hint = make_hint("hough")({"image": dots})["hint"]
    assert (hint == -1).all()
    assert (make_hint("hough")({"image": torch.zeros(1, 1, 8, 8)})["hint"] == -1).all()


def test_hough_options_are_checked():
    with pytest.raises(ConfigError, match="min_length=0"):
        make_hint("hough", min_length=0)
    with pytest.raises(ConfigError, match="low=200"):
        make_hint("hough", low_threshold=200, high_threshold=100)
