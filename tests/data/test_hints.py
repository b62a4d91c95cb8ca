"""Hint transforms: Canny edges where an image has edges and nowhere else, a blur that is the
block average, other batch keys kept, values in [-1, 1]."""

import importlib.util
import sys

import pytest
import torch

from difflab.core.errors import ConfigError, DataError, DifflabError
from difflab.data import BlurHint, CannyHint, Compose, RandomHorizontalFlip, make_hint

needs_cv2 = pytest.mark.skipif(
    importlib.util.find_spec("cv2") is None,
    reason="OpenCV is absent (the optional extra: pip install 'difflab[hints]')",
)


def square(n: int = 2, c: int = 3, size: int = 16, lo: int = 4, hi: int = 12) -> torch.Tensor:
    """-1 everywhere but a +1 square over rows and columns lo..hi-1."""
    x = -torch.ones(n, c, size, size)
    x[..., lo:hi, lo:hi] = 1.0
    return x


@needs_cv2
def test_canny_finds_the_square_border_and_nothing_inside_or_outside():
    batch = {"image": square(), "label": torch.tensor([3, 5])}
    hint = CannyHint()(batch)["hint"]
    assert hint.shape == (2, 1, 16, 16) and hint.dtype == torch.float32
    assert set(hint.unique().tolist()) == {-1.0, 1.0}
    edges = hint[:, 0] > 0  # [N, H, W]
    # Within one pixel of the square's boundary (rows/cols 4 and 11): the ring 3..12 minus 6..9.
    near = torch.zeros(16, 16, dtype=torch.bool)
    near[3:13, 3:13] = True
    near[6:10, 6:10] = False
    assert not (edges & ~near).any()
    top, bottom = edges[:, 3:5, 5:11], edges[:, 11:13, 5:11]
    left, right = edges[:, 5:11, 3:5], edges[:, 5:11, 11:13]
    for side in (top, bottom, left, right):
        assert side.flatten(1).any(dim=1).all()  # every side found in every image
    assert torch.equal(edges[0], edges[1])


@needs_cv2
def test_canny_of_a_flat_image_has_no_edges_and_thresholds_are_checked():
    flat = torch.full((1, 1, 8, 8), 0.3)
    assert (CannyHint()({"image": flat})["hint"] == -1).all()
    with pytest.raises(ConfigError, match="0 <= low <= high"):
        CannyHint(low_threshold=200, high_threshold=100)
    with pytest.raises(ConfigError, match="0 <= low <= high"):
        CannyHint(low_threshold="50")


def test_canny_without_opencv_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    with pytest.raises(DifflabError, match=r"pip install 'difflab\[hints\]'"):
        make_hint("canny")


def test_blur_is_the_block_average_and_keeps_other_keys():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1
    batch = {"image": image, "label": torch.tensor([1, 2])}
    before = image.clone()
    out = BlurHint(factor=4, mode="nearest")(batch)
    assert out.keys() == {"image", "label", "hint"}
    assert out["image"] is image and torch.equal(image, before)
    assert out["label"] is batch["label"] and "hint" not in batch
    blocks = image.view(2, 3, 2, 4, 2, 4).mean(dim=(3, 5))  # [N, C, 2, 2]
    expected = blocks.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    torch.testing.assert_close(out["hint"], expected)


def test_blur_stays_in_range_and_has_the_image_channels():
    hint = make_hint("blur", factor=3)({"image": square(c=1, size=16)})["hint"]
    assert hint.shape == (2, 1, 16, 16)
    assert hint.min() >= -1 and hint.max() <= 1
    assert hint[0, 0, 8, 8] > 0 and hint[0, 0, 0, 0] == -1
    assert BlurHint().channels(3) == 3


def test_hint_then_flip_turns_image_and_hint_together():
    batch = {"image": torch.rand(2, 1, 8, 8) * 2 - 1}
    out = Compose([BlurHint(factor=2), RandomHorizontalFlip(p=1.0)])(batch)
    torch.testing.assert_close(out["hint"], BlurHint(factor=2)({"image": out["image"]})["hint"])


def test_bad_inputs_and_names_are_clear_errors():
    with pytest.raises(DataError, match="after ToSymmetric"):
        BlurHint()({"image": torch.zeros(1, 1, 8, 8, dtype=torch.uint8)})
    with pytest.raises(ConfigError, match="unknown hint 'sobel'"):
        make_hint("sobel")
    with pytest.raises(ConfigError, match="bad options"):
        make_hint("blur", sigma=2)
    for factor in (0, True, 2.0):
        with pytest.raises(ConfigError, match="factor"):
            BlurHint(factor=factor)
