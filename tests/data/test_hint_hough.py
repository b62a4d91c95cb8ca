"""Hough hints: a drawn straight line is found, along its length and nowhere else; the
segment length, votes and gap scale with the image, so a small image's short sides are found."""

import importlib.util

import numpy as np
import pytest
import torch

from difflab.core.errors import ConfigError
from difflab.data import make_hint
from difflab.data.hint_hough import HoughHint

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


def side_counts(lines: np.ndarray, lo: int, hi: int) -> tuple[list[int], int]:
    """Line pixels within 1 pixel of each side (top, bottom, left, right) of the square whose
    pixels are [lo, hi) in both axes, and the line pixels near none of its sides."""
    ys, xs = np.nonzero(lines)
    first, last = lo - 0.5, hi - 0.5  # the square's outline, between pixel centres

    def near(v: np.ndarray, line: float) -> np.ndarray:
        return np.abs(v - line) <= 1

    def along(v: np.ndarray) -> np.ndarray:
        return (v >= lo - 1) & (v <= hi)

    on = [near(ys, first) & along(xs), near(ys, last) & along(xs)]
    on += [near(xs, first) & along(ys), near(xs, last) & along(ys)]
    return [int(m.sum()) for m in on], int((~np.logical_or.reduce(on)).sum())


@pytest.mark.parametrize("size", [16, 28, 32])
def test_hough_finds_each_side_of_a_square_half_the_image_wide(size):
    # at 16x16 (shapes) and 28x28 (MNIST) the 32x32 lengths and votes missed sides this short
    n = size // 2
    lo = (size - n) // 2
    image = -torch.ones(1, 1, size, size)
    image[..., lo : lo + n, lo : lo + n] = 1.0
    lines = make_hint("hough")({"image": image})["hint"][0, 0].numpy() > 0
    counts, elsewhere = side_counts(lines, lo, lo + n)
    assert min(counts) >= n // 2 and elsewhere == 0, (counts, elsewhere)


def test_hough_settings_are_fractions_of_the_shorter_side_unless_set():
    assert HoughHint().settings(32, 32) == (10, 8, 2)  # the former absolute defaults
    assert HoughHint().settings(16, 16) == (5, 4, 1)
    assert HoughHint().settings(64, 28) == (9, 7, 2)
    assert HoughHint().settings(2, 2) == (1, 1, 0)
    assert HoughHint(threshold=3, max_gap=0).settings(16, 16) == (3, 4, 0)
    square = -torch.ones(1, 1, 16, 16)
    square[..., 4:12, 4:12] = 1.0  # sides of 8 pixels: fewer than 10 votes each
    fixed = make_hint("hough", threshold=10, min_length=8, max_gap=2)
    assert (fixed({"image": square})["hint"] == -1).all()


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
