"""Exponential moving average of the weights (Polyak averaging).

Before `start` steps the average is a copy of the weights; from then on
ema <- d * ema + (1 - d) * w after every optimizer step.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float, start: int = 0) -> None:
        self.decay = decay
        self.start = start
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self._params: tuple[nn.Module, list[torch.Tensor], list[torch.Tensor]] | None = None

    def _pairs(self, model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(EMA tensors, model tensors), paired. The parameters are listed once per model (a
        Parameter outlives .to() and load_state_dict): walking the module tree for them on
        every step costs milliseconds of Python per step on a 35M-parameter UNet."""
        if self._params is None or self._params[0] is not model:
            self._params = (model, list(self.module.parameters()), list(model.parameters()))
        _, ema, src = self._params
        return ema + list(self.module.buffers()), src + list(model.buffers())

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Update after optimizer step number `step` (0-based)."""
        ema, src = self._pairs(model)
        floats = [(e, s) for e, s in zip(ema, src, strict=True) if e.is_floating_point()]
        for e, s in zip(ema, src, strict=True):
            if not e.is_floating_point() or step < self.start:
                e.copy_(s)
        if step >= self.start and floats:
            e_f, s_f = zip(*floats, strict=True)
            torch._foreach_mul_(e_f, self.decay)
            torch._foreach_add_(e_f, s_f, alpha=1.0 - self.decay)
