"""Hint fidelity metrics (evaluation.hint_fidelity): edge F1 with a pixel tolerance, mean IoU,
the scale-invariant log RMSE of depth, against answers worked out by hand; the map re-extractor
trains on exact maps and is cached; hint types without a metric are one-line errors."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from difflab.core.errors import ConfigError
from difflab.data import load_dataset, make_hint
from difflab.evaluation import (
    HintSetting,
    cached_map_network,
    edge_f1,
    hint_fidelity,
    mean_iou,
    scale_invariant_log_rmse,
    train_map_network,
)
from difflab.evaluation.mean_iou import segmentation_labels

needs_cv2 = pytest.mark.skipif(
    importlib.util.find_spec("cv2") is None, reason="OpenCV is absent (difflab[hints])"
)


def _square(size: int = 12, shift: int = 0) -> torch.Tensor:
    """A square outline [1, size, size], its sides 1 pixel wide, moved `shift` pixels right."""
    m = torch.zeros(1, size, size, dtype=torch.bool)
    lo, hi = 3, 8
    m[0, lo, lo + shift : hi + 1 + shift] = True
    m[0, hi, lo + shift : hi + 1 + shift] = True
    m[0, lo : hi + 1, lo + shift] = True
    m[0, lo : hi + 1, hi + shift] = True
    return m


def test_edge_f1_of_a_map_with_itself_is_one_and_with_an_empty_map_zero():
    m = _square()
    assert edge_f1(m, m, tolerance=0)["f1"] == 1.0
    empty = torch.zeros_like(m)
    assert edge_f1(m, empty)["f1"] == 0.0
    assert edge_f1(empty, m)["f1"] == 0.0


def test_edge_f1_of_a_one_pixel_shift_is_one_within_tolerance_one_only():
    m, shifted = _square(), _square(shift=1)
    assert edge_f1(shifted, m, tolerance=1) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    # Tolerance 0: of the 20 outline pixels, the top and bottom rows' 5 overlapping columns
    # (4 + 4 + the shared corners: columns 4..8 of rows 3 and 8 = 10 pixels) match exactly,
    # plus the right side of the original (column 8) meets no moved pixel except its corners.
    exact = int((m & shifted).sum())
    assert exact == 10
    scores = edge_f1(shifted, m, tolerance=0)
    assert scores["precision"] == scores["recall"] == scores["f1"] == pytest.approx(10 / 20)


def test_edge_f1_counts_precision_and_recall_separately():
    target = _square()
    predicted = target.clone()
    predicted[0, 0, 0] = True  # one stray pixel far from every edge: precision 20 / 21
    scores = edge_f1(predicted, target, tolerance=1)
    assert scores["precision"] == pytest.approx(20 / 21)
    assert scores["recall"] == 1.0
    assert scores["f1"] == pytest.approx(2 * (20 / 21) / (1 + 20 / 21))


def test_mean_iou_of_a_map_with_itself_is_one_and_of_a_permutation_by_hand():
    target = torch.tensor([[[0, 0, 0], [1, 1, 2]]])
    assert mean_iou(target, target)["miou"] == 1.0
    swapped = torch.tensor([[[0, 0, 0], [2, 2, 1]]])  # classes 1 and 2 swapped
    # class 0: 3 / 3; class 1: pred {(1,2)} vs target {(1,0),(1,1)}: 0 / 3; class 2: 0 / 3
    scores = mean_iou(swapped, target)
    assert scores["iou"] == [1.0, 0.0, 0.0]
    assert scores["miou"] == pytest.approx(1 / 3)
    partial = torch.tensor([[[0, 0, 1], [1, 1, 1]]])
    # class 0: 2 / 3; class 1: 2 / 4 (pred 4 pixels, target 2, shared 2); class 2: 0 / 1
    assert mean_iou(partial, target)["iou"] == pytest.approx([2 / 3, 2 / 4, 0.0])
    absent = torch.tensor([[[0, 0, 0], [2, 2, 2]]])  # class 1 in neither map: left out
    assert mean_iou(absent, absent)["iou"] == [1.0, None, 1.0]


def test_scale_invariant_depth_error_is_zero_for_a_scaled_depth_and_known_otherwise():
    g = torch.Generator().manual_seed(0)
    depth = torch.rand(3, 1, 6, 6, generator=g, dtype=torch.float64) * 0.8 + 0.1
    for c in (0.25, 1.0, 3.0):
        assert scale_invariant_log_rmse(depth * c, depth).max() < 1e-6  # sqrt of rounding
    assert (scale_invariant_log_rmse(depth + 0.1, depth) > 1e-3).all()
    # two pixels, d = (0, 1): sqrt(mean(d^2) - mean(d)^2) = sqrt(1/2 - 1/4) = 1/2
    two = torch.tensor([[1.0, math.e]])
    assert scale_invariant_log_rmse(two, torch.ones(1, 2)).item() == pytest.approx(0.5)


@pytest.fixture(scope="module")
def tiny_shapes():
    return load_dataset("shapes", split="train", resolution=8, count=48)


def test_the_reextractor_learns_the_exact_maps_of_a_tiny_shapes_set(tiny_shapes):
    x = tiny_shapes.images.float() / 127.5 - 1.0
    classes = tiny_shapes.maps["segmentation"][:, 0]
    seg = train_map_network(tiny_shapes, "segmentation", steps=60, batch_size=16, width=8)
    background_only = mean_iou(torch.zeros_like(classes), classes)["miou"]
    assert mean_iou(seg.predict(x), classes)["miou"] > 2 * background_only
    depth = tiny_shapes.maps["depth"][:, 0]
    net = train_map_network(tiny_shapes, "depth", steps=60, batch_size=16, width=8)
    flat = scale_invariant_log_rmse(torch.full_like(depth, 0.5), depth).mean()
    assert scale_invariant_log_rmse(net.predict(x), depth).mean() < 0.6 * flat


def test_the_reextractor_is_cached_by_dataset_and_task(tiny_shapes, tmp_path):
    first, folder, trained = cached_map_network(tiny_shapes, "depth", cache=tmp_path, steps=2)
    again, folder2, trained2 = cached_map_network(tiny_shapes, "depth", cache=tmp_path, steps=2)
    assert (trained, trained2, folder2) == (True, False, folder)
    assert folder.parent == tmp_path / "map-networks"
    x = tiny_shapes.images[:4].float() / 127.5 - 1.0
    assert torch.equal(first.predict(x), again.predict(x))
    _, other, _ = cached_map_network(tiny_shapes, "segmentation", cache=tmp_path, steps=2)
    assert other != folder


@pytest.fixture(scope="module")
def shapes16():
    return load_dataset("shapes", split="train", resolution=16, count=40).images


@needs_cv2
@pytest.mark.parametrize("hint", ["canny", "hough"])
def test_real_images_score_one_against_their_own_edge_hints(shapes16, hint):
    hints = make_hint(hint)({"image": shapes16.float() / 127.5 - 1.0})["hint"]
    result = hint_fidelity(shapes16, hints, HintSetting(hint))
    assert (result["hint"], result["hint_metric"], result["hint_fidelity"]) == (
        hint,
        "edge_f1",
        1.0,
    )
    # another scene's edges: far lower (0.36 for canny, 0.13 for hough on these 40 scenes)
    assert hint_fidelity(shapes16, hints.roll(1, 0), HintSetting(hint))["hint_fidelity"] < 0.6


@needs_cv2
def test_a_scribble_is_scored_against_the_deterministic_skeleton(shapes16):
    images = shapes16
    scribble = make_hint("scribble", break_rate=0.0, max_radius=0)
    hints = scribble({"image": images.float() / 127.5 - 1.0})["hint"]  # = the skeleton
    assert hint_fidelity(images, hints, HintSetting("scribble"))["hint_fidelity"] == 1.0


def test_segmentation_labels_read_back_the_palette():
    labels = torch.tensor([[[0, 1], [2, 3]]])
    colours = make_hint("segmentation", source="labels")(
        {"image": torch.zeros(1, 3, 2, 2), "segmentation": labels[:, None]}
    )["hint"]
    assert torch.equal(segmentation_labels(colours), labels)


def test_hint_types_without_a_metric_are_one_line_errors():
    images = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
    with pytest.raises(ConfigError, match=r"'blur' has no fidelity metric .*canny") as err:
        hint_fidelity(images, torch.zeros(2, 1, 8, 8), HintSetting("blur"))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="source: labels"):
        hint_fidelity(images, torch.zeros(2, 3, 8, 8), HintSetting("segmentation"))
