"""What the training loop counts on the device between two reads: the loss summed over applied
steps, the skipped steps, and the run of skipped steps in a row against
train.max_nonfinite_steps. `add` runs every step without a host sync; `read` is the one host
read, made at log records and before checkpoints, samples and evaluations."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from difflab.core.errors import TrainingError
from difflab.parallel.distributed import all_reduce_sum


@dataclass(frozen=True)
class HostCounts:
    """The counters as read on the host: the window's loss sum (all ranks together) and
    skipped steps, and the step where the limit of skipped steps in a row was reached."""

    loss_sum: float
    skipped: int
    limit_reached_at: int | None


class StepCounts:
    def __init__(
        self, device: torch.device, max_nonfinite_steps: int, dtype: torch.dtype = torch.float32
    ) -> None:
        """dtype: the losses' (float64 under train.precision fp64)."""
        self.limit = max_nonfinite_steps
        self.loss_sum = torch.zeros((), device=device, dtype=dtype)  # over the window's steps
        self.skipped = torch.zeros((), dtype=torch.int64, device=device)  # in the window
        self.in_a_row = torch.zeros((), dtype=torch.int64, device=device)
        self.reached_at = torch.full((), -1, dtype=torch.int64, device=device)  # -1: not yet

    def add(self, loss: Tensor, skipped: Tensor, step: int) -> None:
        """Count step number `step` (0-based): its mean loss and its skip flag (1.0: skipped),
        both on the device."""
        flag = skipped.to(torch.int64)
        self.loss_sum += torch.where(flag > 0, 0.0, loss)  # a skipped step's loss may be NaN
        self.skipped += flag
        self.in_a_row.mul_(flag).add_(flag)  # (in_a_row + 1) where skipped, else 0
        first = (self.in_a_row == self.limit) & (self.reached_at < 0)
        self.reached_at.masked_fill_(first, step)

    def read(self) -> HostCounts:
        """The one host read of the counters (a collective: every rank calls it alike)."""
        loss_sum = all_reduce_sum(self.loss_sum.clone()).double()
        values = torch.stack([loss_sum, self.skipped.double(), self.reached_at.double()])
        loss, skipped, reached_at = values.tolist()
        return HostCounts(loss, int(skipped), int(reached_at) if reached_at >= 0 else None)

    def reset_window(self) -> None:
        """Start a new log window; the run of skipped steps in a row goes on."""
        self.loss_sum.zero_()
        self.skipped.zero_()

    def check(self, seen: HostCounts, done: int) -> None:
        """Raise TrainingError when train.max_nonfinite_steps skipped steps in a row were
        reached (read after `done` steps: a skip decided on the device is seen only here)."""
        if seen.limit_reached_at is None:
            return
        raise TrainingError(
            f"{self.limit} steps in a row with a non-finite loss or gradient norm "
            f"(train.max_nonfinite_steps={self.limit}), the last at step "
            f"{seen.limit_reached_at}; seen after {done} steps, before any later checkpoint: "
            f"lower train.lr or check the data"
        )
