"""'shapes': procedurally rendered scenes with exact depth and segmentation, no download.

Each image holds 1..max_objects spheres, boxes and vertical cylinders (the three classes) with
random albedo, placed at random, seen by an orthographic camera looking down +z, Lambertian
shaded (ambient AMBIENT plus a light from the upper left front) and composited by a z-buffer.
Scene units are pixels; depth maps are z / (2 size), 1 where no object is (background, black,
class 0); class maps hold 1 + the class of the nearest surface. Split "train" and "test" draw
from numpy generators seeded by (seed, split), so every image is a function of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from difflab.core.errors import ConfigError
from difflab.data.dataset import DATASETS, ImageDataset, Split

CLASSES = ("sphere", "box", "cylinder")
AMBIENT = 0.2
LIGHT = np.array([-1.0, -1.0, -1.5]) / np.linalg.norm([-1.0, -1.0, -1.5])  # toward the light
SPLIT_INDEX = {"train": 0, "test": 1}


@dataclass(frozen=True)
class Shape:
    """One object: its class (index into CLASSES), centre (x, y, z), size r (the radius, or
    the box's half side), half height h (cylinders and boxes), albedo RGB in [0, 1]."""

    kind: int
    centre: tuple[float, float, float]
    r: float
    h: float
    albedo: tuple[float, float, float]

    def surface(self, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Depth z [H, W] of the visible surface at pixel centres (inf off the object) and its
        unit normal [H, W, 3] (facing the camera: n_z <= 0)."""
        dx, dy = px - self.centre[0], py - self.centre[1]
        zero = np.zeros_like(dx)
        if CLASSES[self.kind] == "sphere":  # |p - c| = r, the near half
            inside = dx**2 + dy**2 <= self.r**2
            dz = np.sqrt(np.clip(self.r**2 - dx**2 - dy**2, 0, None))
            normal = np.stack([dx, dy, -dz], axis=-1) / self.r
        elif CLASSES[self.kind] == "cylinder":  # |x - cx| <= r about a vertical axis
            inside = (np.abs(dx) <= self.r) & (np.abs(dy) <= self.h)
            dz = np.sqrt(np.clip(self.r**2 - dx**2, 0, None))
            normal = np.stack([dx, zero, -dz], axis=-1) / self.r
        else:  # an axis-aligned box: its front face
            inside = (np.abs(dx) <= self.r) & (np.abs(dy) <= self.h)
            dz = np.full_like(dx, self.r)
            normal = np.stack([zero, zero, -np.ones_like(dx)], axis=-1)
        return np.where(inside, self.centre[2] - dz, np.inf), normal


def render(shapes: list[Shape], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The z-buffered scene: image float [H, W, 3] in [0, 1], depth [H, W] in [0, 1] (1: no
    object) and class map int64 [H, W] (0: background, else 1 + class)."""
    py, px = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    zbuf = np.full((size, size), np.inf)
    image = np.zeros((size, size, 3))
    classes = np.zeros((size, size), np.int64)
    for shape in shapes:
        z, normal = shape.surface(px, py)
        near = z < zbuf
        shade = AMBIENT + (1 - AMBIENT) * np.clip(normal @ LIGHT, 0, None)  # Lambert
        image[near] = shade[near, None] * np.array(shape.albedo)
        classes[near] = shape.kind + 1
        zbuf = np.where(near, z, zbuf)
    depth = np.where(np.isfinite(zbuf), zbuf / (2 * size), 1.0)
    return image, depth, classes


def random_scene(rng: np.random.Generator, size: int, max_objects: int) -> list[Shape]:
    """1..max_objects shapes: centres inside the image, z in [size / 2, 3 size / 2], sizes
    size / 8..size / 4, albedo in [0.3, 1]."""
    shapes = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        x, y = rng.uniform(0, size, 2)
        z = rng.uniform(size / 2, 3 * size / 2)
        r, h = rng.uniform(size / 8, size / 4, 2)
        albedo = tuple(rng.uniform(0.3, 1.0, 3).tolist())
        shapes.append(Shape(int(rng.integers(len(CLASSES))), (x, y, z), r, h, albedo))
    return shapes


def scenes(count: int, size: int, max_objects: int, seed: tuple[int, ...]) -> dict[str, Tensor]:
    """`count` random scenes: image uint8 [N, 3, H, W], depth float32 [N, 1, H, W],
    segmentation long [N, 1, H, W], label long [N] (the class covering most pixels)."""
    rng = np.random.default_rng(seed)  # a SeedSequence of the integers in seed
    images, depths, maps, labels = [], [], [], []
    for _ in range(count):
        image, depth, classes = render(random_scene(rng, size, max_objects), size)
        images.append(np.rint(image * 255).astype(np.uint8).transpose(2, 0, 1))
        depths.append(depth[None].astype(np.float32))
        maps.append(classes[None])
        labels.append(int(np.bincount(classes.ravel(), minlength=4)[1:].argmax()))
    return {
        "image": torch.from_numpy(np.stack(images)),
        "depth": torch.from_numpy(np.stack(depths)),
        "segmentation": torch.from_numpy(np.stack(maps)),
        "label": torch.tensor(labels, dtype=torch.long),
    }


@DATASETS.register("shapes")
def load_shapes(
    *,
    root: Path | None,
    split: Split,
    download: bool,
    max_bad_fraction: float,
    resolution: int = 32,
    count: int = 0,
    max_objects: int = 3,
    seed: int = 0,
) -> ImageDataset:
    """`count` scenes (0: 5000 for "train", 1000 for "test") of side `resolution`, with maps
    "depth" and "segmentation". `root`, `download`, `max_bad_fraction` do not apply."""
    minimum = {"resolution": 4, "count": 0, "max_objects": 1, "seed": 0}
    values = {"resolution": resolution, "count": count, "max_objects": max_objects, "seed": seed}
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum[key]:
            raise ConfigError(
                f"data.options.{key}={value!r}: expected an integer >= {minimum[key]}"
            )
    n = count or (5000 if split == "train" else 1000)
    data = scenes(n, resolution, max_objects, (seed, SPLIT_INDEX[split]))
    return ImageDataset(
        images=data["image"],
        labels=data["label"],
        num_classes=len(CLASSES),
        class_names=list(CLASSES),
        name="shapes",
        split=split,
        maps={"depth": data["depth"], "segmentation": data["segmentation"]},
    )
