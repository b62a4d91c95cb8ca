"""The training loop: a short loop over train_step with periodic logging, samples, validation
and checkpoints; losses stay on the device and are read every log_every steps. Non-finite
steps, signals and a full disk: docs/runs.md."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from difflab.config.schema import Config
from difflab.core.progress import LogLines, phase, progress
from difflab.parallel.distributed import any_rank, barrier, is_distributed, is_main, world_size
from difflab.parallel.sharding import is_sharded
from difflab.runs.checkpoint import discard_failed_start
from difflab.runs.metrics import MetricsLog, read_metrics, trim_metrics
from difflab.runs.report import write_report
from difflab.runs.rng import seeded_generator
from difflab.runs.wandb_log import WandbLog
from difflab.training.flops import mfu, peak_flops, train_flops_per_image
from difflab.training.optim import set_lr
from difflab.training.periodic import (
    Halt,
    never,
    save_ema_snapshot,
    save_samples,
    save_state,
    validation_loss,
    validation_size,
)
from difflab.training.sample_eval import SampleEvaluator
from difflab.training.session import TrainingRun, open_training_run
from difflab.training.signals import Interrupted, StopRequest
from difflab.training.step import MicroBatch, skips_on_device, train_step
from difflab.training.step_counts import HostCounts, StepCounts


def train(
    config: Config,
    *,
    tensorboard: bool = True,
    stop_at: int | None = None,
    trust_checkpoint: bool = False,
) -> Path:
    """Train (or resume) config's run; return its folder, which rank 0 prints first. stop_at
    stops after that many steps with a checkpoint, as a kill would (the schedule still spans
    train.steps); trust_checkpoint lets a resumed state.pt use full pickle. Raises Interrupted
    after SIGTERM/SIGINT, checkpoint written; torch's CPU thread count is restored."""
    threads = torch.get_num_threads()
    try:
        session = open_training_run(config, trust_checkpoint=trust_checkpoint)
        if is_main():
            print(f"run folder: {session.run_dir}", flush=True)
        if is_main() and config.train.resume:
            trim_metrics(session.run_dir, session.start_step)
        log = MetricsLog(
            session.run_dir,
            tensorboard=tensorboard,
            enabled=is_main(),
            wandb=_wandb(config, session.run_dir) if is_main() else None,
        )
        try:
            _log_skipped_data(session, log)
            with StopRequest() as stop:
                done = run_loop(session, log, stop_at, stop)
            if stop.signum is not None and done < config.train.steps:
                raise Interrupted(stop.signum, done, session.run_dir)
        except BaseException as err:
            log.close(failed=True)
            if session.created and not isinstance(err, Interrupted | KeyboardInterrupt):
                discard_failed_start(session.run_dir)
            raise
        log.close()
    finally:
        torch.set_num_threads(threads)
    return session.run_dir


def _wandb(config: Config, run_dir: Path) -> WandbLog | None:
    r = config.run
    if r.wandb == "off":
        return None
    return WandbLog(run_dir, mode=r.wandb, project=r.wandb_project, config=config.to_dict())


def _log_skipped_data(s: TrainingRun, log: MetricsLog) -> None:
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
class LogWindow:
    """What happened since the last log record, as the host knows it; the loss and the skipped
    steps are counted on the device (StepCounts)."""

    steps: int = 0
    images: int = 0
    seconds: float = 0.0

    def add(self, images: int, seconds: float) -> None:
        self.steps += 1
        self.images += images
        self.seconds += seconds


@dataclass(frozen=True)
class DueWork:
    """The periodic work due after `done` steps."""

    samples: bool
    val: bool
    eval: bool
    checkpoint: bool
    snapshot: bool = False  # an EMA snapshot for post-hoc EMA

    @classmethod
    def at(cls, s: TrainingRun, done: int) -> DueWork:
        t, last = s.config.train, done == s.config.train.steps
        return cls(
            samples=_every(t.sample_every, done) or (t.sample_every > 0 and last),
            val=s.val is not None and (_every(t.val_every, done) or last),
            eval=_every(t.eval_every, done) or (t.eval_every > 0 and last),
            checkpoint=_every(t.checkpoint_every, done) or last,
            snapshot=done > t.ema_start
            and (_every(t.ema_snapshot_every, done) or last)
            and t.ema_snapshot_every > 0,
        )

    def __bool__(self) -> bool:
        return self.samples or self.val or self.eval or self.checkpoint or self.snapshot


# Under torchrun the ranks agree on a stop every this many steps: the agreement is a host
# all-reduce, a network round trip between nodes, too slow to make after every short step.
STOP_CHECK_EVERY = 10


def _halt(stop: StopRequest | None) -> Halt:
    """Whether periodic work stops now: on a signal, in one process (ranks that sample or
    validate together cannot stop apart)."""
    if stop is None or is_distributed():
        return never
    return lambda: stop.signum is not None


def _stop_requested(stop: StopRequest | None, done: int) -> bool:
    """Whether a signal arrived, here or on any rank (every rank must stop at the same step);
    agreed on the host, so the GPU's queue is not waited for. One process checks every step."""
    if is_distributed() and done % STOP_CHECK_EVERY:
        return False
    return any_rank(stop is not None and stop.signum is not None)


def run_loop(
    s: TrainingRun, log: MetricsLog, stop_at: int | None = None, stop: StopRequest | None = None
) -> int:
    """Steps from s.start_step to train.steps (or stop_at, or a signal); return steps done."""
    t = s.config.train
    end = t.steps if stop_at is None else min(stop_at, t.steps)
    bar = progress(t.steps, "train", unit="step", initial=s.start_step, enabled=t.progress)
    records, halt, done = _RecordWriter(s, log, bar), _halt(stop), s.start_step
    evaluator = SampleEvaluator(s) if t.eval_every > 0 and is_main() else None
    for step in range(s.start_step, end):
        started = time.perf_counter()
        lr = set_lr(s.state.optimizer, t, step)
        generator = seeded_generator(t.seed, "step", step, s.device)
        loss, skipped = train_step(s.state, _micro_batches(s, step, generator), generator, step)
        records.add(loss, skipped, step, started)  # on the device: no host sync per step
        done = step + 1
        bar.update(1)
        due = DueWork.at(s, done)
        records.read(due, done, lr)  # log record; too many non-finite steps in a row raise
        _periodic(s, log, done, evaluator, due, bar, halt)
        if _stop_requested(stop, done):
            break
    if done < t.steps and done > s.start_step and not _every(t.checkpoint_every, done):
        _checkpoint_on_stop(s, records.counts, done)
    bar.close()
    return done


def _micro_batches(s: TrainingRun, step: int, generator: torch.Generator) -> list[MicroBatch]:
    """The train.grad_accum micro-batches of optimizer step `step`."""
    accum = s.config.train.grad_accum
    return [s.data.micro_batch(step * accum + k, generator) for k in range(accum)]


def _checkpoint_on_stop(s: TrainingRun, counts: StepCounts, done: int) -> None:
    """The checkpoint of a run stopped early (a signal or stop_at), once the steps since the
    last read are known not to pass train.max_nonfinite_steps."""
    counts.check(counts.read(), done)
    _checkpoint(s, done)
    barrier()


def _flops_per_image(s: TrainingRun) -> float:
    """Training FLOPs of one image, with the condition of one real sample: a ControlNet's
    gradients reach trainable weights only through its hint. A fresh generator for the sample's
    augmentation, so counting draws nothing from training's random streams."""
    one = s.data.take(s.data.indices(0)[:1], torch.Generator(s.device))
    return train_flops_per_image(s.state.model, s.latent_shape, one.cond)


class _RecordWriter:
    """Counts the steps of a log window on the device (StepCounts) and writes its record:
    metrics file, progress bar and, where the skip is decided on the device, a warning naming
    the skipped steps (the host path warns at each)."""

    def __init__(self, s: TrainingRun, log: MetricsLog, bar: tqdm | LogLines) -> None:
        self.s, self.log, self.bar = s, log, bar
        t = s.config.train
        self.counts = StepCounts(s.device, t.max_nonfinite_steps, s.state.precision.param_dtype)
        self.window = LogWindow()
        self.peak = peak_flops(s.device)  # counted once, never inside the loop
        self.flops = _flops_per_image(s) if self.peak is not None else None
        self.warn = skips_on_device(s.state)
        self.streamed_skipped = 0  # of s.streamed_skipped, recorded in metrics.jsonl

    def add(self, loss: Tensor, skipped: Tensor, step: int, started: float) -> None:
        """Count step `step` (begun at perf_counter() `started`) in the window, on the device."""
        self.counts.add(loss, skipped, step)
        t = self.s.config.train
        self.window.add(t.batch_size * t.grad_accum, time.perf_counter() - started)

    def read(self, due: DueWork, done: int, lr: float) -> None:
        """Where work is due or a record is (train.log_every, the last step), read the counts
        (waiting for the device to finish the window's steps), write the record and raise
        TrainingError past train.max_nonfinite_steps skipped in a row (StepCounts.check)."""
        t = self.s.config.train
        logged = _every(t.log_every, done) or done == t.steps
        if not (due or logged):
            return
        waited = time.perf_counter()
        seen = self.counts.read()
        self.window.seconds += time.perf_counter() - waited
        if logged:
            self.write(self.window, seen, done, lr)
            self.counts.reset_window()
            self.window = LogWindow()
        self.counts.check(seen, done)

    def write(self, window: LogWindow, seen: HostCounts, done: int, lr: float) -> None:
        epoch = self.s.data.position(done * self.s.config.train.grad_accum)[0]
        record = _log_record(window, seen, done, lr, epoch)
        if self.flops is not None:
            record["mfu"] = mfu(self.flops, record["images_per_s"], self.peak, world_size())
        self.log.write(record)
        self._write_streamed_skipped(done)
        self.bar.set_postfix(_postfix(record))
        if isinstance(self.bar, LogLines):  # a log file gets one line per record
            self.bar.write_line()
        if self.warn and seen.skipped:
            warnings.warn(
                f"{seen.skipped} of the {window.steps} steps up to step {done - 1} skipped: "
                f"non-finite loss or gradient norm",
                stacklevel=2,
            )

    def _write_streamed_skipped(self, done: int) -> None:
        """A data_skipped record (all files so far) when a streamed dataset found new ones."""
        files = list(self.s.streamed_skipped)
        if len(files) > self.streamed_skipped:
            self.log.write({"step": done, "data_skipped": len(files), "data_skipped_files": files})
            self.streamed_skipped = len(files)


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


def _log_record(window: LogWindow, seen: HostCounts, done: int, lr: float, epoch: int) -> dict:
    """images/s counts training steps only, not sample grids, validation or checkpoints.
    The loss is the mean over applied steps: null when every step of the window was skipped."""
    applied = window.steps - seen.skipped
    return {
        "step": done,
        "loss": seen.loss_sum / applied / world_size() if applied else None,
        "lr": lr,
        "images_per_s": window.images / max(window.seconds, 1e-9),  # all ranks together
        "epoch": epoch,
        "skipped": seen.skipped,
    }


def _periodic(
    s: TrainingRun,
    log: MetricsLog,
    done: int,
    evaluator: SampleEvaluator | None,
    due: DueWork,
    bar: tqdm | LogLines,
    halt: Halt,
) -> None:
    """Sample grids, validation, sample metrics and checkpoints due after `done` steps, each
    named on the progress bar; once halt says true, only the checkpoint."""
    if due.samples:
        with phase(bar, f"step {done}: sample grids ({_grid_cost(s)})"):
            paths = save_samples(s, done, halt)  # every rank samples a shard of the seeds
        for path in paths:
            log.image(f"samples/{path.stem.rsplit('-', 1)[-1]}", path, done)
    if due.val and not halt() and (is_main() or is_sharded(s.state.model)):
        # Sharded weights need every rank in each forward, so all compute the same loss.
        with phase(bar, f"step {done}: validation ({validation_size(s)} images)"):
            val_loss = validation_loss(s, halt)
        if val_loss is not None:
            log.write({"step": done, "val_loss": val_loss, "val_split": s.config.data.val_split})
    if due.eval and evaluator is not None and not halt():
        with phase(bar, f"step {done}: evaluation ({s.config.train.eval_samples} samples)"):
            log.write(evaluator(s, done))  # rank 0 only
    if due.snapshot:
        save_ema_snapshot(s, done)
    if due.checkpoint:
        _checkpoint(s, done)
    if due:
        barrier()


def _grid_cost(s: TrainingRun) -> str:
    sample = s.config.sample
    return f"2 x {sample.num} images, {sample.steps} {sample.sampler} steps"


def _checkpoint(s: TrainingRun, done: int) -> None:
    """A checkpoint (gathered on every rank, written on rank 0), then rank 0 rewrites the run's
    report.html, so a killed run keeps a recent one. A report that cannot be written is a
    warning: training goes on."""
    save_state(s, done)
    if not is_main():
        return
    try:
        write_report(s.run_dir)
    except OSError as err:
        warnings.warn(f"cannot write the report of {s.run_dir}: {err}", stacklevel=2)
