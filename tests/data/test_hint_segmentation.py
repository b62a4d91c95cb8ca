"""Segmentation hints: palette colours round-trip to their labels; regions of a two-colour image
are filled with the image's own colours; missing or mis-sized label maps are one-line errors."""

import importlib.util

import pytest
import torch

from difflab.core.errors import DataError
from difflab.data import make_hint
from difflab.data.hint_segmentation import colour_labels, labels_from_colours, palette


def test_the_palette_has_256_distinct_colours_and_round_trips_through_the_hint():
    assert len({tuple(c) for c in palette().tolist()}) == 256 and palette()[0].tolist() == [0, 0, 0]
    assert palette()[[1, 2, 3, 15]].tolist() == [
        [128, 0, 0],
        [0, 128, 0],
        [128, 128, 0],
        [192, 128, 128],
    ]
    labels = torch.arange(256).reshape(4, 1, 8, 8)
    hint = make_hint("segmentation", source="labels")
    out = hint({"image": torch.zeros(4, 1, 8, 8), "segmentation": labels})["hint"]
    assert out.shape == (4, 3, 8, 8) and out.min() >= -1 and out.max() <= 1
    colours = ((out + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)  # [N, H, W, 3]
    assert torch.equal(labels_from_colours(colours), labels[:, 0])
    assert torch.equal(labels_from_colours(colour_labels(labels)), labels)
    with pytest.raises(DataError, match="outside the palette"):
        labels_from_colours(torch.tensor([[1, 2, 3]], dtype=torch.uint8))


def test_label_hints_need_paired_maps_of_the_images_size():
    hint = make_hint("segmentation", source="labels")
    with pytest.raises(DataError, match=r"batch\['segmentation'\].*'shapes'"):
        hint({"image": torch.zeros(2, 1, 8, 8)})
    with pytest.raises(DataError, match=r"shape \(2, 1, 4, 4\), expected \(2, 1, 8, 8\)"):
        hint({"image": torch.zeros(2, 1, 8, 8), "segmentation": torch.zeros(2, 1, 4, 4).long()})


@pytest.mark.skipif(importlib.util.find_spec("skimage") is None, reason="scikit-image is absent")
def test_regions_of_a_two_colour_image_are_its_two_colours():
    x = torch.empty(2, 3, 16, 16)
    x[:] = torch.tensor([-0.6, 0.2, 1.0]).view(3, 1, 1)
    x[..., 5:12, 3:10] = torch.tensor([0.8, -1.0, 0.0]).view(3, 1, 1)
    out = make_hint("segmentation")({"image": x})["hint"]
    assert out.shape == x.shape
    # Each region's mean colour is its (quantized) colour: the uint8 round trip, within 1/127.5.
    assert (out - x).abs().max() <= 0.5 / 127.5 + 1e-6
