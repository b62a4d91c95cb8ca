"""Exponential moving average of the weights (Polyak averaging).

Before `start` steps the average is a copy of the weights; from then on
ema <- d * ema + (1 - d) * w after every optimizer step.

With sharded weights (FSDP2) the average is sharded the same way and each rank averages its
own shard; with replicated weights (DDP) every rank holds the same average.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from difflab.training.sharding import local


class EMA:
    def __init__(
        self, model: nn.Module, decay: float, start: int = 0, module: nn.Module | None = None
    ) -> None:
        """module: a model of the same architecture (sharded like `model`) to hold the average,
        for models that cannot be deep-copied (FSDP2); its weights are set to model's."""
        self.decay = decay
        self.start = start
        self._tensors: tuple[nn.Module, list[torch.Tensor], list[torch.Tensor]] | None = None
        copied = module is None
        self.module = (copy.deepcopy(model) if copied else module).eval().requires_grad_(False)
        if not copied:
            with torch.no_grad():
                for e, s in zip(*self._pairs(model), strict=True):
                    e.copy_(s)

    def _pairs(self, model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(average, weights), paired: this rank's shards. The tensors are listed once per model
        (a Parameter outlives .to() and load_state_dict): walking the module tree on every step
        costs milliseconds of Python per step on a 35M-parameter UNet."""
        if self._tensors is None or self._tensors[0] is not model:
            ema = [*self.module.parameters(), *self.module.buffers()]
            self._tensors = (model, ema, [*model.parameters(), *model.buffers()])
        _, ema, src = self._tensors
        return [local(v) for v in ema], [local(v) for v in src]

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
