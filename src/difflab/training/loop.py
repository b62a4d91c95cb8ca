"""The training loop: a short loop over train_step with periodic logging, samples, validation
and checkpoints. Losses stay on the device and are read every log_every steps.

Faults: a step whose loss or gradient norm is not finite is skipped (see step.py), and
train.max_nonfinite_steps skipped in a row stop training with TrainingError. SIGTERM/SIGINT
finish the current step, write a checkpoint and raise Interrupted (signals.py). A checkpoint
that cannot be written (disk full) stops training with CheckpointError; the previous
checkpoint stays intact, so the run resumes from it once there is space.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from difflab.errors import TrainingError
from difflab.training.config import Config
from difflab.training.distributed import (
    all_reduce_sum,
    barrier,
    is_distributed,
    is_main,
    world_size,
)
from difflab.training.flops import mfu, peak_flops, train_flops_per_image
from difflab.training.hooks import save_samples, save_state, validation_loss
from difflab.training.optim import set_lr
from difflab.training.reporting import MetricsLog, progress_bar, read_metrics, trim_metrics
from difflab.training.rng import seeded_generator
from difflab.training.sample_eval import SampleEvaluator
from difflab.training.session import Session, open_session
from difflab.training.sharding import is_sharded
from difflab.training.signals import Interrupted, StopRequest
from difflab.training.step import train_step


def train(
    config: Config,
    *,
    tensorboard: bool = True,
    stop_at: int | None = None,
    trust_checkpoint: bool = False,
) -> Path:
    """Train (or resume) the run described by config; return the run folder.

    stop_at interrupts the run after that many steps (with a checkpoint), as a kill would;
    the schedule still spans train.steps. trust_checkpoint lets a resumed checkpoint's state.pt
    use full pickle. Raises Interrupted after SIGTERM/SIGINT (a checkpoint is written first).
    torch's CPU thread count (train.cpu_threads) is restored on return."""
    threads = torch.get_num_threads()
    try:
        session = open_session(config, trust_checkpoint=trust_checkpoint)
        if is_main() and config.train.resume:
            trim_metrics(session.run_dir, session.start_step)
        log = MetricsLog(session.run_dir, tensorboard=tensorboard, enabled=is_main())
        try:
            _log_skipped_data(session, log)
            with StopRequest() as stop:
                done = run_loop(session, log, stop_at, stop)
            if stop.signum is not None and done < config.train.steps:
                raise Interrupted(stop.signum, done, session.run_dir)
        finally:
            log.close()
    finally:
        torch.set_num_threads(threads)
    return session.run_dir


def _log_skipped_data(s: Session, log: MetricsLog) -> None:
    """Unreadable training images (already warned about by the loader), counted and named
    when they are not those the run's metrics last named: a resume reads the data again, and
    records a change from its start step on (0 files: the data was mended)."""
    files = [path for path, _ in s.data_skipped]
    if is_main() and files != _last_skipped_files(s.run_dir):
        log.write({"step": s.start_step, "data_skipped": len(files), "data_skipped_files": files})


def _last_skipped_files(run_dir: Path) -> list[str]:
    """The files of the newest data_skipped record in metrics.jsonl; [] when there is none."""
    named = [r["data_skipped_files"] for r in read_metrics(run_dir) if "data_skipped" in r]
    return named[-1] if named else []


def _every(n: int, done: int) -> bool:
    return n > 0 and done % n == 0


@dataclass
class Window:
    """What happened since the last log record; the loss sum stays on the device."""

    loss_sum: torch.Tensor
    applied: int = 0
    skipped: int = 0
    images: int = 0
    seconds: float = 0.0


def _stop_requested(stop: StopRequest | None, device: torch.device) -> bool:
    """Whether a signal arrived, here or (with a process group) on any rank."""
    requested = stop is not None and stop.signum is not None
    if not is_distributed():
        return requested
    flag = torch.tensor(float(requested), device=device)
    return bool(all_reduce_sum(flag) > 0)  # every rank must stop at the same step


def run_loop(
    s: Session, log: MetricsLog, stop_at: int | None = None, stop: StopRequest | None = None
) -> int:
    """Steps from s.start_step to train.steps (or stop_at, or a signal); return steps done."""
    t = s.config.train
    end = t.steps if stop_at is None else min(stop_at, t.steps)
    window = Window(torch.zeros((), device=s.device))
    skipped_in_a_row, done = 0, s.start_step
    bar = progress_bar(t.steps, s.start_step, enabled=t.progress)
    peak = peak_flops(s.device)  # counted once, never inside the loop
    flops = train_flops_per_image(s.state.model, s.image_shape) if peak is not None else None
    evaluator = SampleEvaluator(s) if t.eval_every > 0 and is_main() else None
    for step in range(s.start_step, end):
        started = time.perf_counter()
        lr = set_lr(s.state.optimizer, t, step)
        generator = seeded_generator(t.seed, "step", step, s.device)
        batches = [
            s.data.micro_batch(step * t.grad_accum + k, generator) for k in range(t.grad_accum)
        ]
        loss, ok = train_step(s.state, batches, generator, step)
        skipped_in_a_row = 0 if ok else skipped_in_a_row + 1
        if skipped_in_a_row >= t.max_nonfinite_steps:
            raise TrainingError(
                f"{skipped_in_a_row} steps in a row with a non-finite loss or gradient norm "
                f"(train.max_nonfinite_steps={t.max_nonfinite_steps}), the last at step {step}; "
                f"the weights are those of the last good step: lower train.lr or check the data"
            )
        _add(window, loss, ok, t.batch_size * t.grad_accum, time.perf_counter() - started)
        done = step + 1
        bar.update(1)
        if _every(t.log_every, done) or done == t.steps:
            record = _log_record(window, done, lr, s.data.position(done * t.grad_accum)[0])
            if flops is not None:
                record["mfu"] = mfu(flops, record["images_per_s"], peak, world_size())
            log.write(record)
            bar.set_postfix(_postfix(record))
            window = Window(window.loss_sum.zero_())
        _periodic(s, log, done, evaluator)
        if _stop_requested(stop, s.device):
            break
    if done < t.steps and done > s.start_step and not _every(t.checkpoint_every, done):
        save_state(s, done)  # gathers on every rank, writes on rank 0
        barrier()
    bar.close()
    return done


def _postfix(record: dict) -> dict[str, str]:
    """The progress bar's loss, images/s and, where the device's peak is known, MFU."""
    loss = record["loss"]  # None when every step of the window was skipped
    postfix = {
        "loss": "skipped" if loss is None else f"{loss:.4f}",
        "img_s": f"{record['images_per_s']:.0f}",
    }
    if "mfu" in record:
        postfix["mfu"] = f"{record['mfu']:.1%}"
    return postfix


def _add(window: Window, loss: torch.Tensor, ok: bool, images: int, seconds: float) -> None:
    if ok:
        window.loss_sum += loss
    window.applied += ok
    window.skipped += not ok
    window.images += images
    window.seconds += seconds


def _log_record(window: Window, done: int, lr: float, epoch: int) -> dict:
    """images/s counts training steps only, not sample grids, validation or checkpoints.
    The loss is the mean over applied steps: null when every step of the window was skipped."""
    world = world_size()
    # The one read of the loss: the sum over steps and ranks.
    loss_sum = float(all_reduce_sum(window.loss_sum.clone()))
    return {
        "step": done,
        "loss": loss_sum / window.applied / world if window.applied else None,
        "lr": lr,
        "images_per_s": window.images / max(window.seconds, 1e-9),  # all ranks together
        "epoch": epoch,
        "skipped": window.skipped,
    }


def _periodic(s: Session, log: MetricsLog, done: int, evaluator: SampleEvaluator | None) -> None:
    """Sample grids, validation, sample metrics and checkpoints due after `done` steps."""
    t, last = s.config.train, done == s.config.train.steps
    due_samples = _every(t.sample_every, done) or (t.sample_every > 0 and last)
    due_val = s.val is not None and (_every(t.val_every, done) or last)
    due_eval = _every(t.eval_every, done) or (t.eval_every > 0 and last)
    due_checkpoint = _every(t.checkpoint_every, done) or last
    if due_samples:
        save_samples(s, done)  # every rank samples a shard of the seeds
    if due_val and (is_main() or is_sharded(s.state.model)):
        # Sharded weights need every rank in each forward, so all compute the same loss.
        val_loss = validation_loss(s)
        log.write({"step": done, "val_loss": val_loss, "val_split": s.config.data.val_split})
    if due_eval and evaluator is not None:
        log.write(evaluator(s, done))  # rank 0 only
    if due_checkpoint:
        save_state(s, done)  # gathers on every rank, writes on rank 0
    if due_samples or due_val or due_eval or due_checkpoint:
        barrier()
