"""One optimizer step: grad_accum micro-batches, mixed precision, clipping, the NaN guard, EMA."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from difflab.conditioning import Condition, drop_condition
from difflab.losses import DenoisingLoss
from difflab.parallel.distributed import all_reduce_sum
from difflab.parallel.sharding import gradient_sync
from difflab.training.ema import EMA
from difflab.training.precision import Precision


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
    null_text: Tensor | None = None  # [1, L, D] the empty prompt's embedding (text conditions)
    noise_offset: float = 0.0  # scale of the per-sample, per-channel offset added to eps
    keep_hint: bool = False  # condition dropout keeps cond.hint (Stable Diffusion's ControlNet)


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
    state: TrainState,
    batch: MicroBatch,
    generator: torch.Generator,
    cond_dropout: float,
    null_text: Tensor | None = None,
) -> Tensor:
    """The denoising loss of one micro-batch: t, eps and condition dropout drawn from generator.

    The draws are made for the whole micro-batch and cut to this rank's rows, so every sample
    gets the same t and eps whatever the world size. Dropped text becomes null_text [1, L, D]
    (the empty prompt's embedding), or zeros without it."""
    x0, cond = state.precision.data(batch.x0), batch.cond
    device = x0.device
    total = batch.total or x0.shape[0]
    rows = slice(batch.offset, batch.offset + x0.shape[0])
    t = state.loss_fn.sample_training_t(total, generator=generator, device=device)
    eps = torch.randn((total, *x0.shape[1:]), generator=generator, device=device, dtype=x0.dtype)
    if state.noise_offset:
        eps = eps + offset_noise(state.noise_offset, eps, generator)
    t, eps = t[rows], eps[rows]
    if cond is not None and cond_dropout > 0:
        drop = torch.rand(total, generator=generator, device=device)[rows] < cond_dropout
        cond = drop_condition(cond, drop, null_text, keep_hint=state.keep_hint)
    with state.precision.autocast():
        return state.loss_fn(state.forward, x0, t, eps, cond)


def offset_noise(scale: float, eps: Tensor, generator: torch.Generator) -> Tensor:
    """scale * n, n ~ N(0, 1) of shape [N, C, 1, 1]: one constant per sample and channel
    (offset noise, Guttenberg 2023; diffusers' --noise_offset), added to eps and its target."""
    shape = (*eps.shape[:2], *(1,) * (eps.ndim - 2))  # [N, C, 1, 1]
    n = torch.randn(shape, generator=generator, device=eps.device, dtype=eps.dtype)
    return scale * n


def skips_on_device(state: TrainState) -> bool:
    """Whether a non-finite step is skipped on the device, with no host sync: the optimizer
    takes a found_inf flag (fused AdamW) and no fp16 grad scaler makes its own decision."""
    takes_flag = getattr(state.optimizer, "_step_supports_amp_scaling", False)
    return takes_flag and not state.precision.scaler.is_enabled()


def train_step(
    state: TrainState, batches: Sequence[MicroBatch], generator: torch.Generator, step: int
) -> tuple[Tensor, Tensor]:
    """Optimizer step number `step` (0-based) on the mean loss of the micro-batches.

    Returns (mean loss, skipped): detached 0-dim tensors on the device, skipped 1.0 where the
    step was skipped, else 0.0. A non-finite loss or gradient norm skips the step: no optimizer
    or EMA update, so no NaN reaches the weights. Where `skips_on_device(state)` the decision
    stays on the device (fused AdamW's found_inf; the loop reads the flag later); otherwise it is
    read here, with a warning naming the step (the fp16 grad scaler still lowers its scale).
    """
    state.optimizer.zero_grad(set_to_none=True)
    total = _accumulate_gradients(state, batches, generator)
    state.precision.scaler.unscale_(state.optimizer)
    params = [p for p in state.model.parameters() if p.grad is not None]
    grad_norm = nn.utils.get_total_norm([p.grad for p in params])
    # Sharded (FSDP2) gradients give a DTensor norm; the check needs its global value.
    full_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
    bad = _non_finite(total, full_norm)
    skipped = (bad.sum() > 0).float()  # exactly 1.0 or 0.0, as the fused kernel needs
    if skips_on_device(state):
        _update_unless_skipped(state, params, grad_norm, skipped, step)
    else:
        _update_after_sync(state, params, grad_norm, bad, step)
    return total, skipped


def _accumulate_gradients(
    state: TrainState, batches: Sequence[MicroBatch], generator: torch.Generator
) -> Tensor:
    """Backpropagate the mean loss of batches (gradients synced across ranks on the last
    only); return that mean, detached."""
    total = torch.zeros((), device=batches[0].x0.device, dtype=state.precision.param_dtype)
    for k, batch in enumerate(batches):
        with gradient_sync(state.forward, state.model, enabled=k == len(batches) - 1):
            loss = micro_batch_loss(
                state, batch, generator, state.cond_dropout, state.null_text
            ) / len(batches)
            state.precision.scaler.scale(loss).backward()
        total += loss.detach()
    return total


def _non_finite(loss: Tensor, grad_norm: Tensor) -> Tensor:
    """[2] flags on the device, each > 0 where the loss (0) or gradient norm (1) is not finite
    on some rank: every rank skips alike (a non-finite value anywhere reaches all gradients)."""
    bad = torch.stack([~torch.isfinite(loss), ~torch.isfinite(grad_norm)]).float()
    return all_reduce_sum(bad)


def _update_unless_skipped(
    state: TrainState, params: list[Tensor], grad_norm: Tensor, skipped: Tensor, step: int
) -> None:
    """Clip, step and average with the skip decided on the device. Clipping by a non-finite
    norm makes NaN gradients, which the fused kernel ignores when found_inf is 1: it leaves
    weights, moments and step count as they were (torch.optim.adam._fused_adam)."""
    _clip(state, params, grad_norm)
    optimizer = state.optimizer
    optimizer.found_inf = skipped  # read by optimizer.step, as GradScaler.step sets it
    try:
        optimizer.step()
    finally:
        del optimizer.found_inf
    state.ema.update(state.model, step, skipped=skipped)


def _update_after_sync(
    state: TrainState, params: list[Tensor], grad_norm: Tensor, bad: Tensor, step: int
) -> None:
    """Clip, step and average unless the flags, read here, say the step is non-finite.

    The one host sync per step on this path: an optimizer without a found_inf input (or the
    fp16 grad scaler's own decision) needs the skip decided before it touches its state."""
    bad_loss, bad_grad = bad.tolist()
    scaler = state.precision.scaler
    if bad_loss or bad_grad:
        what = "loss" if bad_loss else "gradient norm"
        warnings.warn(f"non-finite {what} at step {step}; step skipped", stacklevel=3)
        scaler.update()  # fp16: inf/NaN gradients lower the scale; a no-op otherwise
        state.optimizer.zero_grad(set_to_none=True)
        return
    _clip(state, params, grad_norm)
    scaler.step(state.optimizer)
    scaler.update()
    state.ema.update(state.model, step)


def _clip(state: TrainState, params: list[Tensor], grad_norm: Tensor) -> None:
    if state.grad_clip is not None:
        nn.utils.clip_grads_with_norm_(params, state.grad_clip, grad_norm)
