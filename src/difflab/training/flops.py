"""Model FLOPs utilisation (MFU): the FLOPs of training on one image, counted once with
torch.utils.flop_counter, over the device's peak rate."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from difflab.conditioning import Condition

# Dense bf16 tensor-core peaks from the datasheets, FLOP/s, by a part of the device name.
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def peak_flops(device: torch.device) -> float | None:
    """The device's dense bf16 peak, or None where it is not known (MFU is then not shown)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)


def train_flops_per_image(
    model: nn.Module, image_shape: tuple[int, int, int], cond: Condition | None = None
) -> float:
    """Forward + backward FLOPs of F(x, t, cond) on one image of shape (C, H, W) (cond: one
    sample's), counted on a copy on the meta device: no memory, no arithmetic, and no draw from
    the global RNG (dropout's), so counting never changes what training computes. Attention is
    counted as its matrix products there, which CPU's fused attention kernel would leave out."""
    meta = copy.deepcopy(model).to("meta")
    x = torch.zeros((1, *image_shape), device="meta")
    t = torch.zeros(1, device="meta")
    cond = cond.to("meta") if cond is not None else None
    with FlopCounterMode(display=False) as counter:
        meta(x, t, cond).float().square().mean().backward()
    return float(counter.get_total_flops())


def mfu(flops_per_image: float, images_per_s: float, peak: float, devices: int = 1) -> float:
    """Achieved FLOP/s over the peak of all devices together."""
    return flops_per_image * images_per_s / (peak * devices)
