"""The mixed-precision policy, in one place: autocast dtype and the fp16 grad scaler.

"auto" is bf16 autocast on CUDA and fp32 on CPU. fp16 scales the loss with a GradScaler so
small gradients do not underflow; bf16 needs no scaling.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from difflab.core.errors import ConfigError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Precision:
    name: str  # resolved: fp32, bf16 or fp16
    device: torch.device
    scaler: torch.amp.GradScaler

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES.get(self.name, torch.float32)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context the forward pass runs in (a no-op for fp32)."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)


def resolve_precision(name: str, device: torch.device) -> Precision:
    if name == "auto":
        name = "bf16" if device.type == "cuda" else "fp32"
    if name not in ("fp32", "bf16", "fp16"):
        raise ConfigError(f"unknown precision {name!r}; expected auto, fp32, bf16 or fp16")
    if name == "fp16" and device.type == "cpu":
        raise ConfigError("train.precision 'fp16' needs a CUDA device; use bf16 or fp32 on CPU")
    scaler = torch.amp.GradScaler(device.type, enabled=name == "fp16")
    return Precision(name=name, device=device, scaler=scaler)
