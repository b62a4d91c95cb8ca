"""`data.channels`: a dataset's images with the channel count a run asks for. Grey images
repeated to RGB (1 -> 3) let a latent run encode digits or MNIST with an RGB VAE."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from difflab.errors import ConfigError

if TYPE_CHECKING:
    from difflab.data.dataset import ImageDataset


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
