"""Periodic work of the loop: sample grids, validation loss, checkpoints. Grids and validation
take `halt`, asked between sampler steps and validation batches: when it says true they stop
and return what they finished (a stop request, so that Ctrl-C is answered promptly)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch

from difflab.config.plugins import network_plugin
from difflab.core.progress import progress
from difflab.data import to_uint8
from difflab.parallel.distributed import gather_rows, is_main, shard_rows
from difflab.parallel.sharding import full_model_state, full_optimizer_state
from difflab.parameterization import Denoiser
from difflab.runs.checkpoint import save_checkpoint
from difflab.runs.ema_snapshots import write_snapshot
from difflab.runs.frozen import slim_state
from difflab.runs.rng import capture_rng_state, seeded_generator
from difflab.sampling.generation import resolve_labels, sample_images
from difflab.sampling.hints import cycled
from difflab.sampling.images import write_png_grid
from difflab.training.batches import dataset_hints
from difflab.training.session import TrainingRun
from difflab.training.step import micro_batch_loss

Halt = Callable[[], bool]  # whether to stop the periodic work now


def never() -> bool:
    return False


class Halted(Exception):
    """Raised from a sampler's step callback when halt says true."""


def _halting(halt: Halt) -> Callable[..., None]:
    """A sampler step callback that raises Halted when halt() is true."""

    def callback(*_: object) -> None:
        if halt():
            raise Halted

    return callback


def save_samples(s: TrainingRun, done: int, halt: Halt = never) -> list[Path]:
    """Grids from the EMA and the raw weights, fixed seeds 0..num-1, in
    run/samples/step-000500-{ema,raw}.png: labels cycled over the classes, or a plug-in network's
    grid (Stable Diffusion: sample.prompts cycled, one column per prompt). A ControlNet run's
    image i is drawn under the hint of the i-th held-out image (grid_hints), those hints shown
    in run/samples/hints.png. Every rank samples its shard of the seeds (shard_rows); rank 0
    gathers and writes, and returns the grids it wrote (halt ends it before or during a grid)."""
    num = s.config.sample.num
    rows = shard_rows(num)
    plugin = network_plugin(s.config.model.network)  # a plug-in's grids halt between grids only
    draw = plugin.grid_draw(s, rows) if plugin else _class_draw(s, rows, _halting(halt))
    written = []
    for tag, denoiser in (("ema", s.ema_denoiser), ("raw", s.denoiser)):
        if halt():
            break
        try:
            x0 = gather_rows(_in_eval(draw, denoiser), num)
        except Halted:
            break
        if x0 is None:
            continue
        if not torch.isfinite(x0).all():
            warnings.warn(f"non-finite {tag} samples at step {done}; grid not saved", stacklevel=2)
            continue
        path = s.run_dir / "samples" / f"step-{done:06d}-{tag}.png"
        write_png_grid(to_uint8(x0), path, _ncol(s))
        written.append(path)
    return written


GridDraw = Callable[[Denoiser], torch.Tensor]  # a denoiser -> this rank's grid images in [-1, 1]


def _class_draw(s: TrainingRun, rows: range, callback: Callable[..., None]) -> GridDraw:
    """The images of rows: labels cycled over the classes, a ControlNet run's grid hints (which
    rank 0 writes to run/samples/hints.png the first time)."""
    num = s.config.sample.num
    labels = resolve_labels(None, rows.stop, s.num_classes)
    labels = labels[rows.start :] if labels is not None else None
    hints = grid_hints(s, num)
    if hints is not None and is_main() and not (s.run_dir / "samples" / "hints.png").exists():
        write_png_grid(to_uint8(hints), s.run_dir / "samples" / "hints.png", _ncol(s))
    return partial(
        sample_images,
        image_shape=s.image_shape,
        labels=labels,
        seeds=list(rows),
        sample=s.config.sample,
        device=s.device,
        hints=cycled(hints, rows),
        codec=s.codec,
        callback=callback,
        embeddings=cycled(grid_embeddings(s), rows),
    )


def grid_hints(s: TrainingRun, num: int) -> torch.Tensor | None:
    """A ControlNet run's fixed grid hints: those of the first num images of the validation
    split the session holds, else of the training split (cycled when fewer); None otherwise."""
    source = s.val if s.val is not None else s.data
    return dataset_hints(s.config, source.image_data, num, source.maps)


def grid_embeddings(s: TrainingRun) -> torch.Tensor | None:
    """An unCLIP decoder's grid embeddings: those of the validation split's images (else the
    training split's), cycled; None for other runs."""
    source = s.val if s.val is not None else s.data
    return getattr(source, "embeddings", None)


def _ncol(s: TrainingRun) -> int | None:
    n = len(s.config.sample.prompts) or s.num_classes  # prompts: a Stable Diffusion run's
    return n if 0 < n <= 16 else None


def _in_eval(draw: GridDraw, denoiser: Denoiser) -> torch.Tensor:
    was_training = denoiser.training
    denoiser.eval()
    try:
        return draw(denoiser)
    finally:
        denoiser.train(was_training)


def validation_size(s: TrainingRun) -> int:
    """The held-out images validated: the split's first train.val_images (all when None)."""
    assert s.val is not None
    n, limit = s.val.images.shape[0], s.config.train.val_images
    return n if limit is None else min(n, limit)


@torch.no_grad()
def validation_loss(s: TrainingRun, halt: Halt = never) -> float | None:
    """Mean denoising loss of the raw weights over the first validation_size(s) held-out
    images, with the same t and eps every time (a generator seeded by (seed, "validation")),
    no condition dropout; None when halt said true before the last batch."""
    assert s.val is not None
    # The bare model, not its DDP wrapper: under DDP only rank 0 validates, so no collectives
    # (sharded weights: every rank runs it, the forward gathers them).
    val, state = s.val, replace(s.state, forward=s.state.model)
    generator = seeded_generator(s.config.train.seed, "validation", 0, s.device)
    n = validation_size(s)
    total = torch.zeros((), device=s.device)
    bar = progress(n, "validation", unit="img", leave=False)
    state.model.eval()
    try:
        for start in range(0, n, val.batch_size):
            if halt():
                return None
            index = torch.arange(start, min(n, start + val.batch_size), device=s.device)
            batch = val.take(index, generator)
            total += micro_batch_loss(state, batch, generator, 0.0) * len(index)
            bar.update(len(index))
    finally:
        state.model.train()
        bar.close()
    return float(total) / n


def save_state(s: TrainingRun, done: int) -> None:
    """Checkpoint after `done` steps: weights, EMA, optimizer, scaler, RNG states.

    Every rank calls it: sharded weights and optimizer state are gathered to rank 0 (full
    tensors on the CPU), which writes the same single-file checkpoint as one process; a
    network with a declared frozen part saves the rest (runs/frozen.py)."""
    t = s.config.train
    model = full_model_state(s.state.model)
    ema = full_model_state(s.state.ema.module)
    optimizer = full_optimizer_state(s.state.model, s.state.optimizer)
    if not is_main():
        return
    model, metadata = slim_state(s.state.model, model)
    ema, _ = slim_state(s.state.model, ema)
    epoch, batch = s.data.position(done * t.grad_accum)
    state = {
        "optimizer": optimizer,
        "scaler": s.state.precision.scaler.state_dict(),
        "lr_schedule": {"name": t.lr_schedule, "step": done},
        "ema_step": done,
        "rng": capture_rng_state(),
        "data_position": {"epoch": epoch, "batch": batch},
    }
    save_checkpoint(
        s.run_dir / "checkpoints",
        done,
        model=model,
        ema=ema,
        state=state,
        keep=t.keep_checkpoints,
        metadata=metadata,
    )


def save_ema_snapshot(s: TrainingRun, done: int) -> None:
    """The power-function EMA after `done` steps into RUN/ema-snapshots (`difflab ema`);
    gathered on every rank, written by rank 0 (slim: runs/frozen.py)."""
    ema = full_model_state(s.state.ema.module)
    if is_main():
        averaged, gamma = done - s.config.train.ema_start, s.state.ema.gamma
        ema, frozen = slim_state(s.state.model, ema)
        write_snapshot(s.run_dir, done, ema, averaged=averaged, gamma=gamma, frozen=frozen)
