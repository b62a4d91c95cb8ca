"""ImageDataset (a whole split held in memory) and the registry of dataset loaders.

Every dataset difflab trains on is small enough to load whole: the trainer moves it to the
device once and batches by index, so there is no DataLoader and no host work per step.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Protocol, get_args

import torch
from torch import Tensor

from difflab.core.errors import ConfigError, DataError
from difflab.core.registry import Registry

Split = Literal["train", "test"]


@dataclass(frozen=True)
class ImageDataset:
    """One split of a labelled image dataset, held whole in memory."""

    images: Tensor  # [N, C, H, W] uint8
    labels: Tensor  # [N] long, in [0, num_classes)
    num_classes: int
    class_names: list[str]
    name: str
    split: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) not loaded
    # per-pixel maps paired with the images, [N, C, H, W]: "depth", "segmentation" (data/shapes),
    # "hint" (data.hints)
    maps: dict[str, Tensor] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # each image's file, relative to data.root

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be uint8 [N, C, H, W], got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.long or self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"labels must be long [{self.images.shape[0]}], got {self.labels.dtype} "
                f"{tuple(self.labels.shape)}"
            )
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        for key, m in self.maps.items():
            if m.ndim != 4 or m.shape[0] != len(self):
                raise ValueError(
                    f"map {key!r} must be [{len(self)}, C, H, W], got {tuple(m.shape)}"
                )

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        c, h, w = self.images.shape[1:]
        return c, h, w

    def to(self, device: torch.device | str) -> ImageDataset:
        maps = {key: m.to(device) for key, m in self.maps.items()}
        return replace(
            self, images=self.images.to(device), labels=self.labels.to(device), maps=maps
        )

    def batch(self, index: Tensor) -> dict[str, Tensor]:
        """The batch dict {"image": uint8 [B, C, H, W], "label": long [B], and each map
        [B, 1, H, W]} at `index` ([B])."""
        maps = {key: m[index] for key, m in self.maps.items()}
        return {"image": self.images[index], "label": self.labels[index], **maps}


class DatasetLoader(Protocol):
    """Loads one split; dataset-specific options (image_size, mirrors, ...) are keywords."""

    def __call__(
        self, *, root: Path | None, split: Split, download: bool, max_bad_fraction: float
    ) -> ImageDataset: ...


DATASETS: Registry[DatasetLoader] = Registry("dataset")


def load_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    split: Split = "train",
    download: bool = False,
    max_bad_fraction: float = 0.01,
    channels: int | None = None,
    **options: object,
) -> ImageDataset:
    """Load split `split` of the registered dataset `name` (see DATASETS.names()).

    `options` are the loader's own keywords (e.g. image_size for "image-folder"); an option the
    loader does not take is a ConfigError naming it as `data.options.<option>`. channels: see
    with_channels (None keeps the dataset's).
    """
    if split not in get_args(Split):
        raise ConfigError(f"data.split must be one of {get_args(Split)}, got {split!r}")
    if not 0.0 <= max_bad_fraction <= 1.0:
        raise ConfigError(f"data.max_bad_fraction must be in [0, 1], got {max_bad_fraction}")
    loader = DATASETS.get(name)
    check_dataset_options(name, options)
    dataset = loader(
        root=None if root is None else Path(root).expanduser(),
        split=split,
        download=download,
        max_bad_fraction=max_bad_fraction,
        **options,
    )
    return with_channels(dataset, channels)


def check_dataset_options(name: str, options: dict[str, object]) -> None:
    """Raise ConfigError naming `data.options.KEY` for a keyword the loader does not take."""
    common = {"root", "split", "download", "max_bad_fraction"}
    accepted = sorted(set(inspect.signature(DATASETS.get(name)).parameters) - common)
    for key in options:
        if key not in accepted:
            raise ConfigError(
                f"data.options.{key} is not an option of dataset {name!r}; "
                f"its options are: {', '.join(accepted) or 'none'}"
            )


def require_folder(root: Path | None, dataset: str) -> Path:
    """`root` if it is an existing folder, else a DataError naming it and `data.root`."""
    if root is None:
        raise DataError(f"dataset {dataset!r} needs a data folder: set data.root")
    if not root.is_dir():
        raise DataError(f"data folder {root} (data.root) for dataset {dataset!r} does not exist")
    return root


def with_channels(dataset: ImageDataset, channels: int | None) -> ImageDataset:
    """dataset unchanged for None or its own channel count; grey [N, 1, H, W] repeated to
    [N, 3, H, W] for 3; any other change is a ConfigError naming data.channels."""
    have = dataset.images.shape[1]
    if channels is None or channels == have:
        return dataset
    if (have, channels) != (1, 3):
        raise ConfigError(
            f"data.channels={channels}: {dataset.name} images have {have} channels; only grey "
            "images can be repeated to RGB (data.channels=3)"
        )
    return replace(dataset, images=dataset.images.expand(-1, 3, -1, -1).contiguous())
