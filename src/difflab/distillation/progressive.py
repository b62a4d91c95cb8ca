"""Progressive distillation rounds (Salimans & Ho 2022, Algorithm 2) on a trained run.

Round 1's teacher is the run's EMA denoiser with the DDIM grid of teacher_steps steps (the
uniform grid and spacing the run samples with); its student starts as an exact copy of it and
learns to take in one DDIM step the teacher's two, on every other time of the teacher's grid.
After each round the student's EMA becomes the next teacher (and the next student's start)
and the step count halves, until target_steps. Each round is the trainer's own loop
(training.loop.run_loop) over train_step with a DistillationLoss: optimizer, EMA, precision,
logging, sample grids, validation and checkpoints are the trainer's. The distilled run's
folder is an ordinary run whose `sample` section is DDIM at the student's step count.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import torch
import yaml
from torch import Tensor

from difflab.distillation.config import DistillConfig, student_steps
from difflab.distillation.loss import DistillationLoss
from difflab.errors import ConfigError
from difflab.generation import LoadedRun, load_run
from difflab.parameterization import Denoiser
from difflab.schedules import NoiseSchedule, uniform_grid
from difflab.training.config import Config, RunConfig
from difflab.training.distributed import is_main
from difflab.training.loop import run_loop
from difflab.training.reporting import MetricsLog, read_metrics
from difflab.training.run_report import write_report
from difflab.training.session import Session, build_train_state, open_session

SETTINGS_FILE = "distill.yaml"  # the distillation settings and teacher run, in the run folder


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
    grid, validation and checkpoint at each round's end; sampling by DDIM at target_steps."""
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
    )
    name = d.name or f"{teacher_dir.name}-distilled"
    run = RunConfig(root=str(teacher_dir.parent), name=name)
    return Config(data=teacher.data, model=teacher.model, train=train, sample=sample, run=run)


def open_student(teacher: LoadedRun, config: Config) -> Session:
    """A new run folder and session whose network holds the teacher's (EMA) weights: round 1's
    student starts as an exact copy of its teacher (Algorithm 2, eta <- theta)."""
    session = open_session(config)
    session.denoiser.network.load_state_dict(teacher.denoiser.network.state_dict())
    return session


def frozen_copy(denoiser: Denoiser) -> Denoiser:
    """The teacher of a round: a copy of the student as it is, in eval mode, without gradients."""
    network = copy.deepcopy(denoiser.network).eval().requires_grad_(False)
    return Denoiser(network, denoiser.schedule, denoiser.parameterization)


def round_session(session: Session, r: int, teacher_times: Tensor, d: DistillConfig) -> Session:
    """The session of round r (0-based): its loss's teacher a frozen copy of the student, a
    fresh optimizer and EMA (a copy of the student), steps r K .. (r + 1) K, samples at the
    student's step count."""
    k, student = d.steps_per_round, session.denoiser
    config = replace(
        session.config,
        train=replace(session.config.train, steps=(r + 1) * k),
        sample=replace(session.config.sample, steps=(len(teacher_times) - 1) // 2),
    )
    state = build_train_state(config, student, session.device)
    base = state.loss_fn
    state.loss_fn = DistillationLoss(
        base.schedule,
        base.parameterization,
        base.weighting,
        base.min_snr_gamma,
        teacher=frozen_copy(student),
        teacher_times=teacher_times,
        teacher_guidance=d.teacher_guidance,
    )
    ema = Denoiser(state.ema.module, student.schedule, student.parameterization)
    return replace(session, config=config, state=state, ema_denoiser=ema, start_step=r * k)


def run_round(
    session: Session, log: MetricsLog, r: int, teacher_times: Tensor, d: DistillConfig
) -> None:
    """Round r: train the student on the teacher's two-step targets, log the round's mean loss,
    then make the student's EMA the student (the next round's teacher and start)."""
    s = round_session(session, r, teacher_times, d)
    teacher_steps = len(teacher_times) - 1
    head = {"round": r + 1, "teacher_steps": teacher_steps, "student_steps": teacher_steps // 2}
    log.write({"step": s.start_step, **head})
    done = run_loop(s, log)
    if is_main():
        log.write({"step": done, **head, "round_loss": _mean_loss(s.run_dir, s.start_step, done)})
    session.denoiser.network.load_state_dict(s.state.ema.module.state_dict())


def _mean_loss(run_dir: Path, start: int, end: int) -> float | None:
    """Mean of the loss records of steps start+1 .. end (None when every step was skipped)."""
    records = read_metrics(run_dir)
    losses = [m["loss"] for m in records if start < m["step"] <= end and m.get("loss") is not None]
    return sum(losses) / len(losses) if losses else None


def distill(teacher_dir: Path | str, d: DistillConfig, *, tensorboard: bool = True) -> Path:
    """Distill the run at teacher_dir (its EMA weights) from d.teacher_steps DDIM steps down to
    d.target_steps; return the new run folder. torch's CPU thread count is restored on return."""
    threads = torch.get_num_threads()
    teacher_dir = Path(teacher_dir)
    try:
        teacher = load_run(teacher_dir)
        config = student_run_config(teacher.config, teacher_dir, d)
        schedule = teacher.denoiser.schedule
        times = uniform_grid(schedule, d.teacher_steps, spacing=config.sample.spacing)
        grids = round_grids(times, len(student_steps(d)))
        check_nested(schedule, grids, config.sample.spacing)
        session = open_student(teacher, config)
        log = MetricsLog(session.run_dir, tensorboard=tensorboard, enabled=is_main())
        try:
            for r, (teacher_times, _) in enumerate(grids):
                run_round(session, log, r, teacher_times, d)
        finally:
            log.close()
        if is_main():
            config.train.steps = len(grids) * d.steps_per_round
            _write_settings(session.run_dir, config, teacher_dir, d)
            write_report(session.run_dir)  # with the rounds' train.steps and last round_loss
    finally:
        torch.set_num_threads(threads)
    return session.run_dir


def _write_settings(run_dir: Path, config: Config, teacher_dir: Path, d: DistillConfig) -> None:
    """The distilled run's final config (train.steps of all rounds, DDIM at target_steps) and
    its distillation settings beside it."""
    (run_dir / "config.yaml").write_text(config.to_yaml())
    settings = {"teacher_run": str(teacher_dir), "distill": vars(d)}
    (run_dir / SETTINGS_FILE).write_text(yaml.safe_dump(settings, sort_keys=False))
