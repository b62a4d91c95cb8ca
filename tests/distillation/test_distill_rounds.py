"""Progressive distillation rounds: the students' grids halve down to the target, each every
other time of its teacher's; round 1's student starts as an exact copy of the teacher; bad
step counts are ConfigErrors naming the keys (PITFALLS: "student not initialised from the
teacher; a single halving round")."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from difflab.cli.main import main
from difflab.core.errors import ConfigError
from difflab.distillation import (
    DistillConfig,
    build_distill_settings,
    round_grids,
    student_steps,
)
from difflab.distillation.progressive import (
    check_nested,
    open_student,
    round_session,
    student_run_config,
    teacher_grids,
)
from difflab.runs.load import build_denoiser, load_run
from difflab.sampling.generation import generate
from difflab.schedules import make_schedule, uniform_grid


@pytest.mark.parametrize("num_steps", [1000, None], ids=["discrete", "continuous"])
def test_sixteen_to_two_is_three_nested_rounds(num_steps):
    schedule = make_schedule("cosine", num_steps=num_steps)
    d = DistillConfig(teacher_steps=16, target_steps=2)
    assert student_steps(d) == [8, 4, 2]
    grids = round_grids(uniform_grid(schedule, 16), len(student_steps(d)))
    assert [(len(t) - 1, len(s) - 1) for t, s in grids] == [(16, 8), (8, 4), (4, 2)]
    for r, (teacher, student) in enumerate(grids):
        assert torch.equal(student, teacher[::2])
        assert torch.equal(student, uniform_grid(schedule, len(student) - 1))
        if r + 1 < len(grids):
            assert torch.equal(grids[r + 1][0], student)
    check_nested(schedule, grids, "trailing")


@pytest.mark.parametrize("spacing", ["leading", "linspace"])
def test_spacing_that_does_not_nest_is_refused(spacing):
    """leading: 16 steps of 1000 are 62 apart, 8 steps 125 apart, not 2 x 62."""
    schedule = make_schedule("cosine")
    grids = round_grids(uniform_grid(schedule, 16, spacing=spacing), 3)
    with pytest.raises(ConfigError, match="sample.spacing"):
        check_nested(schedule, grids, spacing)


def test_more_teacher_steps_than_timesteps_names_the_key():
    d = DistillConfig(teacher_steps=2048, target_steps=4)
    with pytest.raises(ConfigError, match=r"'distill\.teacher_steps'.* 1000 timesteps.*2048"):
        teacher_grids(make_schedule("cosine"), "trailing", d)


@pytest.mark.parametrize(
    "teacher,target", [(256, 5), (12, 4), (4, 4), (4, 8)], ids=["5", "ratio3", "equal", "more"]
)
def test_steps_that_do_not_halve_down_are_config_errors(teacher, target):
    items = [f"distill.teacher_steps={teacher}", f"distill.target_steps={target}"]
    with pytest.raises(ConfigError) as err:
        build_distill_settings(items)
    message = str(err.value)
    assert "distill.teacher_steps" in message and "distill.target_steps" in message
    assert f"teacher_steps={teacher}" in message and f"target_steps={target}" in message


@pytest.mark.parametrize(
    "item,named",
    [
        ("distill.teacher_step=8", "did you mean 'distill.teacher_steps'"),
        ("distill.lr=fast", "'distill.lr' expects a finite number"),
        ("distill.ema_decay=1", "'distill.ema_decay' must be in [0, 1)"),
        ("train.steps=3", "unknown config key 'train'"),
    ],
)
def test_bad_settings_name_the_key(item, named):
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace(")", r"\)")):
        build_distill_settings([item])


def _equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_one_student_and_its_ema_start_as_the_teacher(teacher_dir):
    teacher = load_run(teacher_dir)
    d = DistillConfig(teacher_steps=4, target_steps=2, batch_size=8, seed=1, name="copy")
    config = student_run_config(teacher.config, teacher_dir, d)
    torch.manual_seed(d.seed)
    fresh = build_denoiser(config, in_channels=1, image_size=8, num_classes=10)
    assert not _equal(fresh.network, teacher.denoiser.network)  # so the copy is not by chance
    session = open_student(teacher, config)
    times = uniform_grid(teacher.denoiser.schedule, d.teacher_steps)
    s = round_session(session, 0, times, d)
    assert _equal(s.state.model, teacher.denoiser.network)
    assert _equal(s.state.ema.module, teacher.denoiser.network)
    frozen = s.state.loss_fn.teacher.network
    assert _equal(frozen, teacher.denoiser.network) and frozen is not s.state.model
    assert not any(p.requires_grad for p in frozen.parameters())
    assert torch.equal(s.state.loss_fn.teacher_times, times)
    assert (s.start_step, s.config.train.steps, s.config.sample.steps) == (0, 500, 2)
    s2 = round_session(session, 1, times[::2], replace(d, steps_per_round=3))
    assert (s2.start_step, s2.config.train.steps, s2.config.sample.steps) == (3, 6, 1)


def test_distill_cli_runs_three_rounds_and_sample_uses_the_student_steps(teacher_dir, capsys):
    items = ["distill.teacher_steps=16", "distill.target_steps=2", "distill.steps_per_round=2"]
    items += ["distill.batch_size=8", "distill.log_every=1"]
    assert main(["distill", str(teacher_dir), *items]) == 0
    run_dir = teacher_dir.with_name("tiny-distilled")
    assert f"run folder: {run_dir}" in capsys.readouterr().out
    metrics = [
        line
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
        if "round_loss" in line
    ]
    assert len(metrics) == 3
    records = [eval(line.replace("null", "None")) for line in metrics]
    assert [(r["step"], r["teacher_steps"], r["student_steps"]) for r in records] == [
        (2, 16, 8),
        (4, 8, 4),
        (6, 4, 2),
    ]
    assert all(r["round_loss"] > 0 for r in records)
    run = load_run(run_dir)
    assert (run.config.sample.sampler, run.config.sample.steps, run.step) == ("ddim", 2, 6)
    calls = []
    run.denoiser.network.register_forward_hook(lambda *_: calls.append(1))
    generate(run, num=3)  # the run's own sampling settings: CFG scale 1, one call a step
    assert len(calls) == 2
    out = run_dir / "sample.png"
    assert main(["sample", str(run_dir), "--num", "4", "--out", str(out), "--guidance", "1"]) == 0
    assert out.is_file()
    assert "distill" in (run_dir / "distill.yaml").read_text()


def test_each_round_keeps_the_sessions_condition_dropout_and_null_text(teacher_dir):
    """A Stable Diffusion run's session drops captions to the empty prompt's embedding (its
    state's cond_dropout and null_text, which build_train_state does not know): every round,
    fresh or resumed, must drop them the same way."""
    teacher = load_run(teacher_dir)
    d = DistillConfig(teacher_steps=4, target_steps=2, batch_size=8, name="dropout")
    session = open_student(teacher, student_run_config(teacher.config, teacher_dir, d))
    null_text = torch.randn(1, 3, 5)
    session.state.cond_dropout, session.state.null_text = 0.25, null_text
    s = round_session(session, 0, uniform_grid(teacher.denoiser.schedule, d.teacher_steps), d)
    assert s.state.cond_dropout == 0.25 and s.state.null_text is null_text


@pytest.mark.parametrize(("teacher_guidance", "guidance"), [(1.0, 2.5), (3.0, 1.0), (0.0, 1.0)])
def test_a_student_of_a_guided_teacher_samples_without_guidance(
    teacher_dir, teacher_guidance, guidance
):
    """The student of teacher_guidance w learns D_u + w (D_c - D_u); the run's guidance g on
    top would sample at g * w. Without teacher guidance the student keeps the run's g."""
    teacher = load_run(teacher_dir).config
    teacher = replace(teacher, sample=replace(teacher.sample, guidance=2.5))
    d = DistillConfig(teacher_guidance=teacher_guidance)
    assert student_run_config(teacher, teacher_dir, d).sample.guidance == guidance


def test_distilled_run_of_dot_goes_beside_the_teacher(teacher_dir, monkeypatch):
    """`difflab distill .` in the teacher's folder: RUN-distilled beside it, not a folder
    named "-distilled" inside it."""
    monkeypatch.chdir(teacher_dir)
    config = student_run_config(load_run(".").config, Path("."), DistillConfig())
    assert Path(config.run.root) / config.run.name == teacher_dir.with_name("tiny-distilled")
