"""The precision policy, in one place: autocast dtype, the fp16 grad scaler, and fp64.

"auto" is bf16 autocast on CUDA and fp32 on CPU. fp16 scales the loss with a GradScaler so
small gradients do not underflow; bf16 needs no scaling. fp64 (for debugging numerics) holds
the weights, so the optimizer state and EMA, in float64, and casts the training data, noise
and every floating-point input of the network to float64.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from difflab.core.condition import Condition
from difflab.core.errors import ConfigError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
NAMES = ("fp32", "bf16", "fp16", "fp64")


@dataclass
class Precision:
    name: str  # resolved: fp32, bf16, fp16 or fp64
    device: torch.device
    scaler: torch.amp.GradScaler

    @property
    def dtype(self) -> torch.dtype:
        """The autocast dtype (float32 where there is no autocast)."""
        return DTYPES.get(self.name, torch.float32)

    @property
    def param_dtype(self) -> torch.dtype:
        """The dtype of the weights, the training data and the noise."""
        return torch.float64 if self.name == "fp64" else torch.float32

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context the forward pass runs in (a no-op for fp32 and fp64)."""
        if self.name in ("fp32", "fp64"):
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def data(self, x0: Tensor) -> Tensor:
        """Training data as the step computes with it: float64 under fp64, else as it is."""
        return x0.double() if self.name == "fp64" else x0

    def prepare(self, model: nn.Module) -> None:
        """Put model's weights in param_dtype, in place; under fp64 its floating-point inputs
        (a sampler's float32 x_t, the network time, text embeddings) are cast on the way in."""
        if self.name != "fp64":
            return
        model.to(torch.float64)
        model.register_forward_pre_hook(_inputs_in_float64, with_kwargs=True)


def _float64(value: object) -> object:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.double()
    return value.cast(torch.float64) if isinstance(value, Condition) else value


def _inputs_in_float64(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    return tuple(_float64(a) for a in args), {k: _float64(v) for k, v in kwargs.items()}


def resolve_precision(name: str, device: torch.device) -> Precision:
    if name == "auto":
        name = "bf16" if device.type == "cuda" else "fp32"
    if name not in NAMES:
        raise ConfigError(f"unknown precision {name!r}; expected auto, fp32, bf16, fp16 or fp64")
    if name == "fp16" and device.type == "cpu":
        raise ConfigError("train.precision 'fp16' needs a CUDA device; use bf16 or fp32 on CPU")
    if name == "fp64" and device.type == "mps":
        raise ConfigError("train.precision 'fp64' needs a CPU or CUDA device (MPS has no float64)")
    scaler = torch.amp.GradScaler(device.type, enabled=name == "fp16")
    return Precision(name=name, device=device, scaler=scaler)
