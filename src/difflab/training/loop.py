"""The training loop: a short loop over train_step with periodic logging, samples, validation
and checkpoints. Losses stay on the device and are read every log_every steps."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from difflab.errors import TrainingError
from difflab.training.config import Config
from difflab.training.hooks import save_samples, save_state, validation_loss
from difflab.training.optim import set_lr
from difflab.training.reporting import MetricsLog, progress_bar
from difflab.training.rng import seeded_generator
from difflab.training.session import Session, open_session
from difflab.training.step import train_step

MAX_SKIPPED_IN_A_ROW = 20


def train(config: Config, *, tensorboard: bool = True, stop_at: int | None = None) -> Path:
    """Train (or resume) the run described by config; return the run folder.

    stop_at interrupts the run after that many steps (with a checkpoint), as a kill would;
    the schedule still spans train.steps."""
    session = open_session(config)
    log = MetricsLog(session.run_dir, tensorboard=tensorboard)
    try:
        run_loop(session, log, stop_at)
    finally:
        log.close()
    return session.run_dir


def _every(n: int, done: int) -> bool:
    return n > 0 and done % n == 0


def run_loop(s: Session, log: MetricsLog, stop_at: int | None = None) -> None:
    t = s.config.train
    end = t.steps if stop_at is None else min(stop_at, t.steps)
    loss_sum = torch.zeros((), device=s.device)
    applied, skipped_in_a_row, last = 0, 0, (s.start_step, time.perf_counter())
    bar = progress_bar(t.steps, s.start_step, enabled=t.progress)
    for step in range(s.start_step, end):
        lr = set_lr(s.state.optimizer, t, step)
        generator = seeded_generator(t.seed, "step", step, s.device)
        batches = [
            s.data.micro_batch(step * t.grad_accum + k, generator) for k in range(t.grad_accum)
        ]
        loss, ok = train_step(s.state, batches, generator, step)
        skipped_in_a_row = 0 if ok else skipped_in_a_row + 1
        if skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW:
            raise TrainingError(f"{skipped_in_a_row} non-finite losses in a row at step {step}")
        if ok:
            loss_sum += loss
            applied += 1
        done = step + 1
        bar.update(1)
        if _every(t.log_every, done) or done == t.steps:
            record = _log_record(s, done, lr, loss_sum, applied, last)
            log.write(record)
            bar.set_postfix(loss=f"{record['loss']:.4f}", img_s=f"{record['images_per_s']:.0f}")
            loss_sum.zero_()
            applied, last = 0, (done, time.perf_counter())
        _periodic(s, log, done)
    if end < t.steps and not _every(t.checkpoint_every, end):
        save_state(s, end)
    bar.close()


def _log_record(s: Session, done: int, lr: float, loss_sum, applied: int, last) -> dict:
    t = s.config.train
    start_step, start_time = last
    images = (done - start_step) * t.batch_size * t.grad_accum
    epoch, _ = s.data.position(done * t.grad_accum)
    return {
        "step": done,
        "loss": float(loss_sum) / max(applied, 1),  # the one host sync, every log_every steps
        "lr": lr,
        "images_per_s": images / max(time.perf_counter() - start_time, 1e-9),
        "epoch": epoch,
        "skipped": (done - start_step) - applied,
    }


def _periodic(s: Session, log: MetricsLog, done: int) -> None:
    t = s.config.train
    if _every(t.sample_every, done) or (t.sample_every > 0 and done == t.steps):
        save_samples(s, done)
    if s.val is not None and (_every(t.val_every, done) or done == t.steps):
        log.write(
            {"step": done, "val_loss": validation_loss(s), "val_split": s.config.data.val_split}
        )
    if _every(t.checkpoint_every, done) or done == t.steps:
        save_state(s, done)
