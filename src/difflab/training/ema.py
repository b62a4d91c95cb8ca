"""Exponential moving average of the weights (Polyak averaging).

Before `start` steps the average is a copy of the weights; from then on
ema <- d * ema + (1 - d) * w after every optimizer step, with a fixed decay d, or with the
power-function decay d_n = (1 - 1/n)^(gamma + 1) of EDM2 (Karras et al. 2024, Eq. 8) at the
n-th averaged step, whose length grows with the run (`posthoc_ema.py`).

With sharded weights (FSDP2) the average is sharded the same way and each rank averages its
own shard; with replicated weights (DDP) every rank holds the same average.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from difflab.parallel.sharding import local

CHUNK = 2**24  # elements: bounds the scratch memory of an update with a device skip flag


class EMA:
    def __init__(
        self,
        model: nn.Module,
        decay: float,
        start: int = 0,
        module: nn.Module | None = None,
        gamma: float | None = None,
    ) -> None:
        """module: a model of the same architecture (sharded like `model`) to hold the average,
        for models that cannot be deep-copied (FSDP2); its weights are set to model's.
        gamma: the power-function profile's exponent (`decay` is then unused); None: fixed."""
        self.decay = decay
        self.gamma = gamma
        self.start = start
        self._tensors: tuple[nn.Module, list[Tensor], list[Tensor]] | None = None
        copied = module is None
        self.module = (copy.deepcopy(model) if copied else module).eval().requires_grad_(False)
        if not copied:
            with torch.no_grad():
                for e, s in zip(_tensors(self.module), _tensors(model), strict=True):
                    local(e).copy_(local(s))

    def _pairs(self, model: nn.Module) -> tuple[list[Tensor], list[Tensor]]:
        """(average, weights), paired: this rank's shards. The tensors are listed once per model
        (a Parameter outlives .to() and load_state_dict): walking the module tree on every step
        costs milliseconds of Python per step on a 35M-parameter UNet."""
        if self._tensors is None or self._tensors[0] is not model:
            ema, src = _tensors(self.module), _tensors(model)
            # Frozen parameters (a ControlNet's base) never change; averaging them would only
            # add rounding, so their copy stays exactly as it is.
            moving = [
                i for i, s in enumerate(src) if not isinstance(s, nn.Parameter) or s.requires_grad
            ]
            self._tensors = (model, [ema[i] for i in moving], [src[i] for i in moving])
        _, ema, src = self._tensors
        return [local(v) for v in ema], [local(v) for v in src]

    def decay_at(self, step: int) -> float:
        """The decay applied at optimizer step `step` (>= start): d, or (1 - 1/n)^(gamma + 1)
        with n = step - start + 1 the number of steps averaged so far."""
        if self.gamma is None:
            return self.decay
        return (1.0 - 1.0 / (step - self.start + 1)) ** (self.gamma + 1.0)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int, skipped: Tensor | None = None) -> None:
        """Update after optimizer step number `step` (0-based).

        skipped: a 0-dim flag on the device, 1.0 where the optimizer skipped this step (and
        left the weights as they were); the average then stays as it is too, decided on the
        device. Before `start` the copy needs no flag: a skipped step leaves the weights, so
        also their copy, as they were."""
        ema, src = self._pairs(model)
        floats = [(e, s) for e, s in zip(ema, src, strict=True) if e.is_floating_point()]
        for e, s in zip(ema, src, strict=True):
            if step < self.start:
                e.copy_(s)
            elif not e.is_floating_point():
                e.copy_(s if skipped is None else torch.where(skipped > 0, e, s))
        if step < self.start or not floats:
            return
        decay = self.decay_at(step)
        if skipped is None:
            e_f, s_f = zip(*floats, strict=True)
            torch._foreach_mul_(e_f, decay)
            torch._foreach_add_(e_f, s_f, alpha=1.0 - decay)
            return
        self._update_unless_skipped(floats, skipped, decay)

    def _update_unless_skipped(
        self, floats: list[tuple[Tensor, Tensor]], skipped: Tensor, decay: float
    ) -> None:
        """ema <- D * ema + (1 - d) * (keep * w), with keep = 1 - skipped and D = d, or 1 where
        skipped. keep is 0 or 1, so an applied step rounds exactly as the update without a
        flag (the same two operations on the same operands), and a skipped one leaves ema as
        it is. The scratch copy of keep * w is made a chunk at a time."""
        keep = 1 - skipped
        factor = keep * decay + skipped
        for ema, src in _chunks(floats, CHUNK):
            torch._foreach_mul_(ema, factor)
            torch._foreach_add_(ema, torch._foreach_mul(src, keep), alpha=1.0 - decay)


def _tensors(module: nn.Module) -> list[Tensor]:
    return [*module.parameters(), *module.buffers()]


def _chunks(
    pairs: list[tuple[Tensor, Tensor]], size: int
) -> Iterator[tuple[list[Tensor], list[Tensor]]]:
    """(ema, weights) lists of consecutive pairs, each of `size` elements or fewer (or one
    larger tensor alone)."""
    start, count = 0, 0
    for i, (e, _) in enumerate(pairs):
        if count and count + e.numel() > size:
            yield [p[0] for p in pairs[start:i]], [p[1] for p in pairs[start:i]]
            start, count = i, 0
        count += e.numel()
    yield [p[0] for p in pairs[start:]], [p[1] for p in pairs[start:]]
