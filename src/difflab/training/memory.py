"""Memory a run needs, counted before it is allocated, and allocation failures named.

A network is built on the meta device (shapes, no storage) and its parameters counted for the
copies training holds (weights, EMA, gradients, two Adam moments) against the memory available,
so a mistyped width is one line naming model.options rather than an allocator traceback."""

from __future__ import annotations

from pathlib import Path

import torch

from difflab.config.plugins import NETWORK_PLUGINS
from difflab.config.schema import Config
from difflab.core.errors import ConfigError, TrainingError
from difflab.networks import build_network

TRAINING_COPIES = 5  # weights, EMA, gradients and AdamW's two moments
MEMINFO = Path("/proc/meminfo")


def available_bytes(device: torch.device) -> int | None:
    """Memory free for a new allocation on device (None where it cannot be told)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_network_fits(config: Config, info: dict, device: torch.device) -> None:
    """ConfigError naming the keys when training config.model's network (built for info's data
    shape, without a ControlNet) needs more memory than device has free; it is built on the
    meta device."""
    m = config.model
    if m.network in NETWORK_PLUGINS:
        return  # a plug-in's network (a pretrained folder's UNet), whose size is its own
    with torch.device("meta"):
        network = build_network(
            m.network,
            in_channels=info["in_channels"],
            image_size=info["image_size"],
            num_classes=info["num_classes"] or None,
            options=dict(m.options),
            embedding_dim=info.get("embedding_dim", 0),
        )
    need = TRAINING_COPIES * sum(p.numel() * p.element_size() for p in network.parameters())
    free = available_bytes(device)
    if free is not None and need > free:
        raise ConfigError(
            f"model.network {config.model.network} with model.options "
            f"{dict(config.model.options)} needs about {need / 2**30:.1f} GiB to train (weights, "
            f"EMA, gradients, Adam) but {free / 2**30:.1f} GiB is free; make it smaller"
        )


def is_out_of_memory(err: BaseException) -> bool:
    """Whether err is an allocation failure (CPU allocator, CUDA, Python)."""
    if isinstance(err, MemoryError | torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "can't allocate memory" in str(err)


def out_of_memory_error(err: BaseException) -> TrainingError:
    """The one-line error of an allocation failure, naming the keys that set its size."""
    reason = " ".join(str(err).split())[-160:]
    return TrainingError(
        f"out of memory ({reason}): reduce train.batch_size, data.image_size or the network's "
        "width (model.options)"
    )
