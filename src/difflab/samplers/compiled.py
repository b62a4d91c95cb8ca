"""A network prepared for fast sampling: low-precision weights, channels_last, and
torch.compile with static shapes ("reduce-overhead" replays the whole forward as one CUDA graph).

Wrap the network, not the denoiser: `Denoiser(SamplingNetwork(net), schedule, kind)` keeps the
parameterization's conversions and the sampler state in float32 while the network runs fast.
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import Tensor, nn

from difflab.conditioning import Condition

CompileMode = Literal["default", "reduce-overhead"]


class SamplingNetwork(nn.Module):
    """F(x, t, cond) of a frozen copy of `network` in `dtype` (and channels_last when asked),
    compiled when `mode` is set. Returns float32 in a fresh tensor: an output of a CUDA-graph
    replay is overwritten by the next replay, so it must never reach the sampler state."""

    def __init__(
        self,
        network: nn.Module,
        *,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
        mode: CompileMode | None = None,
    ) -> None:
        super().__init__()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.network = copy.deepcopy(network).eval().requires_grad_(False)
        self.network.to(dtype=dtype, memory_format=self.memory_format)
        self.dtype = dtype
        self.mode = mode
        # Static shapes: one graph per batch size, never a dynamic-shape recompile.
        forward = self.network.forward
        self._forward = (
            forward if mode is None else torch.compile(forward, mode=mode, dynamic=False)
        )

    @torch.no_grad()
    def forward(self, x: Tensor, t: Tensor, cond: Condition | None = None) -> Tensor:
        if self.mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        x = x.to(dtype=self.dtype, memory_format=self.memory_format)  # [N, C, H, W]
        cond = cond.cast(self.dtype) if cond is not None else None  # text, hint as the weights
        return self._forward(x, t, cond).to(torch.float32, copy=True)


def sampling_network(network: nn.Module, device: torch.device) -> SamplingNetwork:
    """The fastest setting for the device: bf16, channels_last and CUDA graphs on CUDA;
    the network as it is (float32, eager) elsewhere."""
    if device.type == "cuda":
        return SamplingNetwork(
            network, dtype=torch.bfloat16, channels_last=True, mode="reduce-overhead"
        )
    return SamplingNetwork(network)
