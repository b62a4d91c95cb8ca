"""Scribble hints: one-pixel skeletons of the soft edges, broken and dilated within the dilated
edges, the same for the same generator seed."""

import importlib.util

import numpy as np
import pytest
import torch

from difflab.core.errors import ConfigError
from difflab.data import make_hint
from difflab.data.hint_scribble import dilate, soft_edges, thin
from difflab.data.hints import grey_uint8

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("cv2") is None or importlib.util.find_spec("skimage") is None,
    reason="OpenCV or scikit-image is absent (difflab[hints])",
)


def shapes(n: int = 3) -> torch.Tensor:
    """A square and a disc, white on black, [n, 1, 32, 32] in [-1, 1]."""
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    x = -torch.ones(n, 1, 32, 32)
    x[..., 4:14, 4:14] = 1.0
    x[..., ((yy - 21) ** 2 + (xx - 21) ** 2) <= 36] = 1.0
    return x


def test_the_skeleton_is_one_pixel_wide_and_inside_the_edges():
    hint = make_hint("scribble", sigma=1.0)
    image = grey_uint8(shapes(1))[0]
    edges = soft_edges(image, 1.0, 0.1)
    skeleton = hint.skeleton(image)
    assert skeleton.sum() > 40  # both outlines are there
    assert np.array_equal(thin(skeleton), skeleton)  # thinning a 1-pixel curve changes nothing
    blocks = skeleton[:-1, :-1] & skeleton[1:, :-1] & skeleton[:-1, 1:] & skeleton[1:, 1:]
    assert not blocks.any()  # no 2x2 block: one pixel wide
    assert not (skeleton & ~edges).any()


def test_scribbles_are_broken_dilated_skeletons_within_the_dilated_edges():
    radius = 2
    hint = make_hint("scribble", break_rate=0.1, max_radius=radius)
    x = shapes(8)
    out = hint({"image": x}, generator=torch.Generator().manual_seed(5))["hint"]
    assert out.shape == (8, 1, 32, 32) and set(out.unique().tolist()) == {-1.0, 1.0}
    image = grey_uint8(x[:1])[0]
    skeleton, edges = hint.skeleton(image), soft_edges(image, 1.0, 0.1)
    scribbles = out[:, 0].numpy() > 0
    for s in scribbles:
        assert not (s & ~dilate(skeleton, radius)).any()
        assert not (s & ~dilate(edges, radius)).any()
    counts = scribbles.reshape(8, -1).sum(1)
    assert len(set(counts.tolist())) > 1  # widths and breaks differ between images
    unbroken = make_hint("scribble", break_rate=0.0, max_radius=0)({"image": x[:1]})["hint"]
    assert np.array_equal(unbroken[0, 0].numpy() > 0, skeleton)


def test_scribbles_repeat_for_a_seed_and_differ_between_seeds():
    hint, x = make_hint("scribble", break_rate=0.1), shapes(4)

    def draw(seed: int) -> torch.Tensor:
        return hint({"image": x}, generator=torch.Generator().manual_seed(seed))["hint"]

    assert torch.equal(draw(1), draw(1))
    assert not torch.equal(draw(1), draw(2))
    assert torch.equal(hint({"image": x})["hint"], hint({"image": x})["hint"])  # its own seed


def test_scribble_options_are_checked():
    with pytest.raises(ConfigError, match="break_rate=2"):
        make_hint("scribble", break_rate=2)
    with pytest.raises(ConfigError, match="max_radius=-1"):
        make_hint("scribble", max_radius=-1)
