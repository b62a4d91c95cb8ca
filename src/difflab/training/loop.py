"""The training loop: a short loop over train_step with periodic logging, samples, validation
and checkpoints. Losses stay on the device and are read every log_every steps."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from difflab.errors import TrainingError
from difflab.training.config import Config
from difflab.training.distributed import all_reduce_sum, barrier, is_main, world_size
from difflab.training.hooks import save_samples, save_state, validation_loss
from difflab.training.optim import set_lr
from difflab.training.reporting import MetricsLog, progress_bar
from difflab.training.rng import seeded_generator
from difflab.training.sample_eval import SampleEvaluator
from difflab.training.session import Session, open_session
from difflab.training.sharding import is_sharded
from difflab.training.step import train_step

MAX_SKIPPED_IN_A_ROW = 20


def train(config: Config, *, tensorboard: bool = True, stop_at: int | None = None) -> Path:
    """Train (or resume) the run described by config; return the run folder.

    stop_at interrupts the run after that many steps (with a checkpoint), as a kill would;
    the schedule still spans train.steps. torch's CPU thread count (train.cpu_threads) is
    restored on return."""
    threads = torch.get_num_threads()
    try:
        session = open_session(config)
        log = MetricsLog(session.run_dir, tensorboard=tensorboard, enabled=is_main())
        try:
            run_loop(session, log, stop_at)
        finally:
            log.close()
    finally:
        torch.set_num_threads(threads)
    return session.run_dir


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


def run_loop(s: Session, log: MetricsLog, stop_at: int | None = None) -> None:
    t = s.config.train
    end = t.steps if stop_at is None else min(stop_at, t.steps)
    window = Window(torch.zeros((), device=s.device))
    skipped_in_a_row = 0
    bar = progress_bar(t.steps, s.start_step, enabled=t.progress)
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
        if skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW:
            raise TrainingError(f"{skipped_in_a_row} non-finite losses in a row at step {step}")
        _add(window, loss, ok, t.batch_size * t.grad_accum, time.perf_counter() - started)
        done = step + 1
        bar.update(1)
        if _every(t.log_every, done) or done == t.steps:
            record = _log_record(window, done, lr, s.data.position(done * t.grad_accum)[0])
            log.write(record)
            bar.set_postfix(loss=f"{record['loss']:.4f}", img_s=f"{record['images_per_s']:.0f}")
            window = Window(window.loss_sum.zero_())
        _periodic(s, log, done, evaluator)
    if end < t.steps and not _every(t.checkpoint_every, end):
        save_state(s, end)
    bar.close()


def _add(window: Window, loss: torch.Tensor, ok: bool, images: int, seconds: float) -> None:
    if ok:
        window.loss_sum += loss
    window.applied += ok
    window.skipped += not ok
    window.images += images
    window.seconds += seconds


def _log_record(window: Window, done: int, lr: float, epoch: int) -> dict:
    """images/s counts training steps only, not sample grids, validation or checkpoints."""
    world = world_size()
    return {
        "step": done,
        # The one read of the loss: the mean over steps and ranks.
        "loss": float(all_reduce_sum(window.loss_sum.clone())) / max(window.applied, 1) / world,
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
