"""The rendered 'shapes' dataset: deterministic per seed and split; depth, class maps and
images agree (background: class 0, depth 1, black); analytic depth and shading of one sphere,
a box and a cylinder; the nearer object wins the z-buffer."""

import numpy as np
import pytest
import torch

from difflab.core.errors import ConfigError
from difflab.data import load_dataset, make_hint
from difflab.data.shapes import AMBIENT, CLASSES, LIGHT, Shape, render

SPHERE, BOX, CYLINDER = (CLASSES.index(k) for k in ("sphere", "box", "cylinder"))


def test_a_seed_and_split_give_the_same_scenes_and_others_differ():
    a = load_dataset("shapes", split="train", count=20)
    b = load_dataset("shapes", split="train", count=20)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    for key in ("depth", "segmentation"):
        assert torch.equal(a.maps[key], b.maps[key])
    assert not torch.equal(a.images, load_dataset("shapes", split="test", count=20).images)
    assert not torch.equal(a.images, load_dataset("shapes", count=20, seed=1).images)


def test_maps_agree_with_the_images_and_labels():
    d = load_dataset("shapes", split="test", count=40, resolution=24)
    assert d.images.shape == (40, 3, 24, 24) and d.num_classes == 3
    depth, classes = d.maps["depth"], d.maps["segmentation"]
    background = classes == 0  # [N, 1, H, W]
    assert background.any() and (~background).any()
    assert torch.equal(background, depth == 1.0)
    assert torch.equal(background[:, 0], (d.images == 0).all(dim=1))  # objects are never black
    assert (depth[~background] > 0).all() and (depth[~background] < 1).all()
    counts = torch.stack([(classes == k + 1).flatten(1).sum(1) for k in range(3)], dim=1)
    assert torch.equal(d.labels, counts.argmax(dim=1))  # the label is the largest class


def shade(normal: np.ndarray) -> float:
    return AMBIENT + (1 - AMBIENT) * max(0.0, float(normal @ LIGHT))


def test_one_sphere_box_and_cylinder_have_their_analytic_depth_and_shading():
    size = 32
    sphere = Shape(SPHERE, (8.5, 8.5, 20.0), 5.0, 5.0, (1.0, 0.5, 0.25))
    box = Shape(BOX, (24.5, 8.5, 30.0), 3.0, 4.0, (0.5, 0.5, 0.5))
    cylinder = Shape(CYLINDER, (16.5, 24.5, 40.0), 4.0, 3.0, (1.0, 1.0, 1.0))
    image, depth, classes = render([sphere, box, cylinder], size)
    assert depth[8, 8] == (20.0 - 5.0) / (2 * size)  # the sphere's nearest point, at its centre
    assert depth[8, 8] == depth[classes == SPHERE + 1].min()
    np.testing.assert_allclose(
        image[8, 8], shade(np.array([0, 0, -1.0])) * np.array([1, 0.5, 0.25])
    )
    # 3 pixels right of the centre: z = c_z - sqrt(r^2 - 9), normal (3, 0, -4) / 5.
    assert depth[8, 11] == pytest.approx((20.0 - 4.0) / 64, abs=1e-12)
    np.testing.assert_allclose(
        image[8, 11], shade(np.array([0.6, 0, -0.8])) * np.array([1, 0.5, 0.25])
    )
    # On the rim at (3, 4) from the centre: normal (0.6, 0.8, 0) faces away from the light.
    assert depth[12, 11] == 20.0 / 64
    np.testing.assert_allclose(image[12, 11], AMBIENT * np.array([1, 0.5, 0.25]))
    assert (classes[5:12, 22:27] == BOX + 1).all() and (depth[5:12, 22:27] == 27.0 / 64).all()
    assert (classes[22:27, 13:20] == CYLINDER + 1).all()
    assert depth[24, 16] == 36.0 / 64 and depth[24, 14] == pytest.approx((40 - 12**0.5) / 64)
    assert set(np.unique(classes).tolist()) == {0, SPHERE + 1, BOX + 1, CYLINDER + 1}
    assert (classes[0, :] == 0).all() and (depth[0, :] == 1.0).all()


def test_the_nearer_object_wins_the_z_buffer_whatever_the_drawing_order():
    far = Shape(BOX, (16.0, 16.0, 40.0), 8.0, 8.0, (1.0, 0.0, 0.0))
    near = Shape(SPHERE, (16.0, 16.0, 20.0), 4.0, 4.0, (0.0, 1.0, 0.0))
    for order in ([far, near], [near, far]):
        image, depth, classes = render(order, 32)
        assert classes[15, 15] == SPHERE + 1 and classes[15, 9] == BOX + 1
        assert image[15, 15, 0] == 0 and image[15, 9, 1] == 0


def test_shapes_feed_the_depth_and_segmentation_hints_and_options_are_checked():
    d = load_dataset("shapes", count=4)
    batch = {**d.batch(torch.arange(4)), "image": d.images[:4].float() / 127.5 - 1}
    seg = make_hint("segmentation", source="labels")(batch)["hint"]
    assert seg.shape == (4, 3, 32, 32)
    assert torch.equal(make_hint("depth")(batch)["hint"], 1 - 2 * d.maps["depth"][:4])
    with pytest.raises(ConfigError, match="data.options.resolution=2"):
        load_dataset("shapes", resolution=2)
