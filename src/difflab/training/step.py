"""One optimizer step: grad_accum micro-batches, mixed precision, clipping, the NaN guard, EMA."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from difflab.conditioning import Condition, drop_condition
from difflab.losses import DenoisingLoss
from difflab.training.distributed import all_reduce_sum
from difflab.training.ema import EMA
from difflab.training.precision import Precision
from difflab.training.sharding import gradient_sync


@dataclass
class TrainState:
    """What a step changes or reads; `forward` is `model`, or its compiled version."""

    model: nn.Module
    forward: nn.Module
    optimizer: torch.optim.Optimizer
    ema: EMA
    precision: Precision
    loss_fn: DenoisingLoss
    grad_clip: float | None
    cond_dropout: float


@dataclass(frozen=True)
class MicroBatch:
    """Rows offset..offset+N of a micro-batch of `total` rows (all ranks' parts together)."""

    x0: Tensor  # [N, C, H, W] in [-1, 1]
    cond: Condition | None
    offset: int = 0
    total: int | None = None  # None: this is the whole micro-batch

    def part(self, rank: int, world: int) -> MicroBatch:
        """Rank `rank`'s equal part of this whole micro-batch, split `world` ways."""
        n = self.x0.shape[0] // world
        rows = slice(rank * n, (rank + 1) * n)
        cond = self.cond.index(rows) if self.cond is not None else None
        return MicroBatch(self.x0[rows], cond, offset=rank * n, total=self.x0.shape[0])


def micro_batch_loss(
    state: TrainState, batch: MicroBatch, generator: torch.Generator, cond_dropout: float
) -> Tensor:
    """The denoising loss of one micro-batch: t, eps and condition dropout drawn from generator.

    The draws are made for the whole micro-batch and cut to this rank's rows, so every sample
    gets the same t and eps whatever the world size."""
    x0, cond = batch.x0, batch.cond
    device = x0.device
    total = batch.total or x0.shape[0]
    rows = slice(batch.offset, batch.offset + x0.shape[0])
    t = state.loss_fn.schedule.sample_training_t(total, generator=generator, device=device)
    eps = torch.randn((total, *x0.shape[1:]), generator=generator, device=device, dtype=x0.dtype)
    t, eps = t[rows], eps[rows]
    if cond is not None and cond_dropout > 0:
        drop = torch.rand(total, generator=generator, device=device)[rows] < cond_dropout
        cond = drop_condition(cond, drop)
    with state.precision.autocast():
        return state.loss_fn(state.forward, x0, t, eps, cond)


def train_step(
    state: TrainState, batches: Sequence[MicroBatch], generator: torch.Generator, step: int
) -> tuple[Tensor, bool]:
    """Optimizer step number `step` (0-based) on the mean loss of the micro-batches.

    Returns (mean loss, detached, on the device; whether the step was applied). A non-finite
    loss or gradient norm skips the step with a warning: no optimizer or EMA update, so no NaN
    reaches the weights (the fp16 grad scaler still lowers its scale).
    """
    state.optimizer.zero_grad(set_to_none=True)
    scaler = state.precision.scaler
    total = torch.zeros((), device=batches[0].x0.device)
    for k, batch in enumerate(batches):
        with gradient_sync(state.forward, state.model, enabled=k == len(batches) - 1):
            loss = micro_batch_loss(state, batch, generator, state.cond_dropout) / len(batches)
            scaler.scale(loss).backward()
        total += loss.detach()
    scaler.unscale_(state.optimizer)
    params = [p for p in state.model.parameters() if p.grad is not None]
    grad_norm = nn.utils.get_total_norm([p.grad for p in params])
    # Sharded (FSDP2) gradients give a DTensor norm; the check needs its global value.
    full_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
    what = _non_finite(total, full_norm)
    if what:
        warnings.warn(f"non-finite {what} at step {step}; step skipped", stacklevel=2)
        scaler.update()  # fp16: inf/NaN gradients lower the scale; a no-op otherwise
        state.optimizer.zero_grad(set_to_none=True)
        return total, False
    if state.grad_clip is not None:
        nn.utils.clip_grads_with_norm_(params, state.grad_clip, grad_norm)
    scaler.step(state.optimizer)
    scaler.update()
    state.ema.update(state.model, step)
    return total, True


def _non_finite(loss: Tensor, grad_norm: Tensor) -> str:
    """'' when loss and gradient norm are finite on every rank, else which one is not.

    The one host sync per step: skipping must be decided before the optimizer touches its
    state, and by every rank alike (a non-finite value anywhere reaches all gradients)."""
    bad = torch.stack([~torch.isfinite(loss), ~torch.isfinite(grad_norm)]).float()
    bad_loss, bad_grad = all_reduce_sum(bad).tolist()
    return "loss" if bad_loss else "gradient norm" if bad_grad else ""
