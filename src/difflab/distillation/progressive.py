"""Progressive distillation rounds (Salimans & Ho 2022, Algorithm 2) on a trained run.

Round 1's teacher is the run's EMA denoiser with the DDIM grid of teacher_steps steps (the
uniform grid and spacing the run samples with); its student starts as an exact copy of it and
learns to take in one DDIM step the teacher's two, on every other time of the teacher's grid.
After each round the student's EMA becomes the next teacher (and the next student's start)
and the step count halves, until target_steps. Each round is the trainer's own loop
(training.loop.run_loop) over train_step with a DistillationLoss: optimizer, EMA, precision,
logging, sample grids, validation and checkpoints are the trainer's. The distilled run's
folder is an ordinary run whose `sample` section is DDIM at the student's step count.

Resume: the folder's distill.yaml (written first) holds the settings, teachers/ the teacher of
each round as it started; `resume_distill` finds the round of the newest checkpoint's step.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from difflab.config.build import build_config
from difflab.config.recipes import read_run_yaml
from difflab.config.schema import Config, ModelConfig, RunConfig
from difflab.core.errors import ConfigError
from difflab.distillation.config import (
    DistillConfig,
    read_settings,
    student_steps,
    write_settings,
)
from difflab.distillation.loss import DistillationLoss
from difflab.distillation.teachers import load_teacher, save_teacher
from difflab.parallel.distributed import any_rank, is_main
from difflab.parameterization import Denoiser
from difflab.runs.files import read_model_info, write_text_atomic
from difflab.runs.latents import recorded_latent
from difflab.runs.load import LoadedRun, load_run
from difflab.runs.metrics import MetricsLog, read_metrics, trim_metrics
from difflab.runs.report import write_report
from difflab.schedules import NoiseSchedule, uniform_grid
from difflab.training.loop import run_loop
from difflab.training.session import TrainingRun, build_train_state, open_training_run
from difflab.training.signals import Interrupted, StopRequest
from difflab.training.step import TrainState


def teacher_grids(schedule: NoiseSchedule, spacing, d: DistillConfig) -> list[Tensor]:
    """The teacher grid of each round: d.teacher_steps, / 2, ... steps of the run's uniform
    grid, each student grid (every other time) checked to be the run's own grid."""
    if schedule.discrete and d.teacher_steps > schedule.num_steps:
        raise ConfigError(
            f"config key 'distill.teacher_steps' must be at most the teacher run's "
            f"{schedule.num_steps} timesteps (model.num_steps), got {d.teacher_steps}"
        )
    times = uniform_grid(schedule, d.teacher_steps, spacing=spacing)
    grids = round_grids(times, len(student_steps(d)))
    check_nested(schedule, grids, spacing)
    return [teacher for teacher, _ in grids]


def round_grids(times: Tensor, rounds: int) -> list[tuple[Tensor, Tensor]]:
    """(teacher grid, student grid) of each round from the first teacher's grid [2N + 1]: each
    student grid is every other time of its teacher's, and the next round's teacher grid."""
    return [(times[:: 2**r], times[:: 2 ** (r + 1)]) for r in range(rounds)]


def check_nested(schedule: NoiseSchedule, grids: list[tuple[Tensor, Tensor]], spacing) -> None:
    """Each student grid must be the run's own uniform grid at its step count, so that the
    distilled run samples on the grid it was trained on; ConfigError naming the spacing."""
    for _, student in grids:
        steps = len(student) - 1
        if not torch.equal(uniform_grid(schedule, steps, spacing=spacing), student):
            raise ConfigError(
                f"config key 'sample.spacing' of the teacher run: the {spacing!r} uniform grid of "
                f"{steps} steps is not every other time of its {2 * steps}-step grid; use "
                "'trailing' (or a continuous-time schedule)"
            )


def student_run_config(teacher: Config, teacher_dir: Path, d: DistillConfig) -> Config:
    """The distilled run's config: the teacher's data and model; training in rounds of
    d.steps_per_round at a constant learning rate (train.steps is set per round), a sample
    grid, validation and checkpoint at each round's end; sampling by DDIM at target_steps,
    without guidance where the student learned the teacher's guided denoiser
    (teacher_guidance != 1): guiding it again would multiply the scales."""
    if teacher.model.controlnet.base_run is not None:
        raise ConfigError(f"{teacher_dir} is a ControlNet run; distill its base run instead")
    k = d.steps_per_round
    train = replace(
        teacher.train,
        steps=k,
        batch_size=d.batch_size,
        lr=d.lr,
        lr_schedule="constant",
        warmup_steps=0,
        grad_accum=1,
        ema_decay=d.ema_decay,
        ema_start=0,
        seed=d.seed,
        log_every=d.log_every,
        sample_every=k,
        val_every=k,
        checkpoint_every=k,
        eval_every=0,
        device=d.device,
        parallel="ddp",  # each round's teacher is a copy of the student: no sharded weights
        resume=None,
    )
    sample = replace(
        teacher.sample,
        sampler="ddim",
        steps=d.target_steps,
        grid="uniform",
        eta=0.0,
        sampler_options={},
        guidance=teacher.sample.guidance if d.teacher_guidance == 1.0 else 1.0,
    )
    beside = teacher_dir.resolve()  # `difflab distill .` names the folder it is run in
    name = d.name or f"{beside.name}-distilled"
    run = RunConfig(root=str(beside.parent), name=name)
    model = _with_recorded_codec(teacher, teacher_dir)
    return Config(data=teacher.data, model=model, train=train, sample=sample, run=run)


def _with_recorded_codec(teacher: Config, teacher_dir: Path) -> ModelConfig:
    """The teacher's model section, a latent run's codec as its model.json records it (the
    VAE's absolute path, the factors it used), as load_run rebuilds it: model.latent.vae may be
    relative to where the teacher was trained."""
    if teacher.model.latent.vae is None:
        return teacher.model
    info = read_model_info(teacher_dir)
    return replace(teacher.model, latent=recorded_latent(info))


def open_student(teacher: LoadedRun, config: Config) -> TrainingRun:
    """A new run folder and session whose network holds the teacher's (EMA) weights: round 1's
    student starts as an exact copy of its teacher (Algorithm 2, eta <- theta)."""
    session = open_training_run(config)
    session.denoiser.network.load_state_dict(teacher.denoiser.network.state_dict())
    return session


def frozen_copy(denoiser: Denoiser) -> Denoiser:
    """The teacher of a round: a copy of the student as it is, in eval mode, without gradients."""
    network = copy.deepcopy(denoiser.network).eval().requires_grad_(False)
    return Denoiser(network, denoiser.schedule, denoiser.parameterization)


def _round_config(session: TrainingRun, r: int, teacher_times: Tensor, d: DistillConfig) -> Config:
    """Round r (0-based) trains to step (r + 1) K and samples at the student's step count."""
    return replace(
        session.config,
        train=replace(session.config.train, steps=(r + 1) * d.steps_per_round),
        sample=replace(session.config.sample, steps=(len(teacher_times) - 1) // 2),
    )


def _with_teacher(
    session: TrainingRun,
    config: Config,
    state: TrainState,
    teacher: Denoiser,
    teacher_times: Tensor,
    d: DistillConfig,
) -> TrainingRun:
    """The round's session: state's loss the distillation loss of teacher on its grid."""
    base = state.loss_fn
    state.loss_fn = DistillationLoss(
        base.schedule,
        base.parameterization,
        base.weighting,
        base.min_snr_gamma,
        teacher=teacher,
        teacher_times=teacher_times.to(session.device),  # once, not a copy every step
        teacher_guidance=d.teacher_guidance,
        null_text=state.null_text,
    )
    student = session.denoiser
    ema = Denoiser(state.ema.module, student.schedule, student.parameterization)
    return replace(session, config=config, state=state, ema_denoiser=ema)


def round_session(
    session: TrainingRun, r: int, teacher_times: Tensor, d: DistillConfig
) -> TrainingRun:
    """The session of round r (0-based): its loss's teacher a frozen copy of the student, a
    fresh optimizer and EMA (a copy of the student), steps r K .. (r + 1) K, samples at the
    student's step count. Condition dropout and the null text are the session's (a Stable
    Diffusion run's caption dropout to the empty prompt), as a resumed round has them."""
    config = _round_config(session, r, teacher_times, d)
    state = build_train_state(config, session.denoiser, session.device, session.state.null_text)
    state.cond_dropout = session.state.cond_dropout  # the session's, as a resumed round has it
    s = _with_teacher(session, config, state, frozen_copy(session.denoiser), teacher_times, d)
    return replace(s, start_step=r * d.steps_per_round)


def resumed_round_session(
    session: TrainingRun, r: int, teacher_times: Tensor, d: DistillConfig
) -> TrainingRun:
    """Round r continued from the mid-round checkpoint the session resumed: the student, its
    optimizer and EMA as restored; the teacher the one recorded at the round's start."""
    teacher = frozen_copy(session.denoiser)
    teacher.network.load_state_dict(load_teacher(session.run_dir, r))
    config = _round_config(session, r, teacher_times, d)
    return _with_teacher(session, config, session.state, teacher, teacher_times, d)


@dataclass
class DistillRounds:
    """The rounds of one distillation over the student's session; stop_at stops after that
    many steps (with a checkpoint) as a kill would, stop on SIGTERM/SIGINT."""

    session: TrainingRun
    log: MetricsLog
    teacher_grids: list[Tensor]
    d: DistillConfig
    stop: StopRequest
    stop_at: int | None = None

    def run(self, first: int, resumed: bool) -> bool:
        """The rounds first, first + 1, ... (the first one continued when resumed); False when
        stopped before the end. Raises Interrupted where a signal arrived."""
        total = len(self.teacher_grids) * self.d.steps_per_round
        for r in range(first, len(self.teacher_grids)):
            done, end = self._round(r, resumed and r == first)
            if done < total and self._stopped(done, end):
                if self.stop.signum is not None:
                    run_dir = self.session.run_dir
                    raise Interrupted(self.stop.signum, done, run_dir, "difflab distill")
                return False
        return True

    def _stopped(self, done: int, end: int) -> bool:
        """Whether the round that ended at `done` was cut short, or stop_at or a signal (on any
        rank: every rank stops) came at its end."""
        at_stop = self.stop_at is not None and done >= self.stop_at
        return done < end or at_stop or any_rank(self.stop.signum is not None)

    def _round(self, r: int, resumed: bool) -> tuple[int, int]:
        """Round r (or the rest of it): train the student on the teacher's two-step targets,
        log the round's mean loss, make the student's EMA the student (the next round's
        teacher and start). Return (steps done, the round's last step)."""
        times, k = self.teacher_grids[r], self.d.steps_per_round
        make = resumed_round_session if resumed else round_session
        s = make(self.session, r, times, self.d)
        steps = len(times) - 1
        head = {"round": r + 1, "teacher_steps": steps, "student_steps": steps // 2}
        if not resumed:
            if is_main():
                save_teacher(s.run_dir, r, s.state.loss_fn.teacher.network.state_dict())
            self.log.write({"step": r * k, **head})
        done, end = run_loop(s, self.log, self.stop_at, self.stop), s.config.train.steps
        if done == end:
            if is_main():
                round_loss = _mean_loss(s.run_dir, r * k, done)
                self.log.write({"step": done, **head, "round_loss": round_loss})
            self.session.denoiser.network.load_state_dict(s.state.ema.module.state_dict())
        return done, end


def _mean_loss(run_dir: Path, start: int, end: int) -> float | None:
    """Mean of the loss records of steps start+1 .. end (None when every step was skipped)."""
    records = read_metrics(run_dir)
    losses = [m["loss"] for m in records if start < m["step"] <= end and m.get("loss") is not None]
    return sum(losses) / len(losses) if losses else None


@contextmanager
def _threads_restored() -> Iterator[None]:
    """torch's CPU thread count (which the session sets from train.cpu_threads) on exit."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _run_rounds(
    session: TrainingRun,
    grids: list[Tensor],
    d: DistillConfig,
    first: int,
    *,
    resumed: bool,
    tensorboard: bool,
    stop_at: int | None,
) -> Path:
    """The rounds from `first` (resumed: continue it from the session's checkpoint); rank 0
    prints the run folder first."""
    if is_main():
        print(f"run folder: {session.run_dir}", flush=True)
    log = MetricsLog(session.run_dir, tensorboard=tensorboard, enabled=is_main())
    try:
        with StopRequest() as stop:
            finished = DistillRounds(session, log, grids, d, stop, stop_at).run(first, resumed)
    finally:
        log.close()
    if finished and is_main():
        write_report(session.run_dir)  # with the last round's round_loss
    return session.run_dir


def write_run_config(session: TrainingRun, rounds: int, d: DistillConfig) -> None:
    """The run's config.yaml with train.steps of all rounds (the session's holds one round's),
    so a report or a resume of a stopped run sees the whole distillation."""
    t = replace(session.config.train, steps=rounds * d.steps_per_round, resume=None)
    write_text_atomic(session.run_dir / "config.yaml", replace(session.config, train=t).to_yaml())


def distill(
    teacher_dir: Path | str,
    d: DistillConfig,
    *,
    tensorboard: bool = True,
    stop_at: int | None = None,
) -> Path:
    """Distill the run at teacher_dir (its EMA weights) from d.teacher_steps DDIM steps down to
    d.target_steps; return the new run folder. stop_at interrupts it after that many steps
    (with a checkpoint), as a kill would. Raises Interrupted after SIGTERM/SIGINT."""
    teacher_dir = Path(teacher_dir)
    with _threads_restored():
        teacher = load_run(teacher_dir)
        config = student_run_config(teacher.config, teacher_dir, d)
        grids = teacher_grids(teacher.denoiser.schedule, config.sample.spacing, d)
        session = open_student(teacher, config)
        if is_main():
            write_settings(session.run_dir, teacher_dir, d)
            write_run_config(session, len(grids), d)
        return _run_rounds(
            session, grids, d, 0, resumed=False, tensorboard=tensorboard, stop_at=stop_at
        )


def resume_distill(
    run_dir: Path | str, *, tensorboard: bool = True, stop_at: int | None = None
) -> Path:
    """Continue the distillation in run_dir from its newest complete checkpoint, with the
    settings it recorded: mid-round with the round's recorded teacher and the restored
    student, EMA, optimizer and RNG state; at a round's end, from the next round."""
    run_dir = Path(run_dir)
    with _threads_restored():
        _, d = read_settings(run_dir)
        config = build_config(read_run_yaml(run_dir))
        config.train.resume = str(run_dir)
        session = open_training_run(config)
        grids = teacher_grids(session.denoiser.schedule, config.sample.spacing, d)
        if is_main():
            trim_metrics(run_dir, session.start_step)
        first, into = divmod(session.start_step, d.steps_per_round)
        if not into:  # a round's end: its EMA is the next round's student (and teacher)
            session.denoiser.network.load_state_dict(session.state.ema.module.state_dict())
        return _run_rounds(
            session, grids, d, first, resumed=into > 0, tensorboard=tensorboard, stop_at=stop_at
        )
