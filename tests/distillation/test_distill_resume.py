"""Resume of progressive distillation: stopped inside a round, at a round's end or by SIGTERM,
then resumed, a distillation gives the losses and final weights of one never stopped (bit for
bit); each round's recorded teacher is the previous round's EMA; a distilled run is never
continued as plain training."""

import json
import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from difflab.cli.main import main
from difflab.distillation import DistillConfig, distill, resume_distill
from difflab.distillation.teachers import teacher_file
from difflab.runs.checkpoint import latest_checkpoint
from difflab.training import step as step_module

# 3 rounds (8 -> 4 -> 2 -> 1 steps) of 2 steps: round 2 is steps 3 and 4.
ITEMS = [
    "distill.teacher_steps=8",
    "distill.target_steps=1",
    "distill.steps_per_round=2",
    "distill.batch_size=8",
    "distill.log_every=1",
]
SETTINGS = DistillConfig(
    teacher_steps=8, target_steps=1, steps_per_round=2, batch_size=8, log_every=1
)


def records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    keep = ("step", "loss", "round", "round_loss", "val_loss")
    return [{k: v for k, v in json.loads(line).items() if k in keep} for line in lines]


def weights(run_dir: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(latest_checkpoint(run_dir) / name)


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "tensors differ"


def assert_same_distillation(run_dir: Path, reference: Path) -> None:
    """Same log records (losses, round losses, validation), final weights, EMA and teachers."""
    assert records(run_dir) == records(reference)
    assert latest_checkpoint(run_dir).name == latest_checkpoint(reference).name == "step-000006"
    for name in ("model.safetensors", "ema.safetensors"):
        assert_same_tensors(weights(run_dir, name), weights(reference, name))
    for r in range(3):
        assert_same_tensors(
            load_file(teacher_file(run_dir, r)), load_file(teacher_file(reference, r))
        )


@pytest.fixture(scope="module")
def reference(teacher_dir) -> Path:
    """The distillation never stopped."""
    return distill(teacher_dir, replace(SETTINGS, name="reference"), tensorboard=False)


def test_each_rounds_teacher_is_the_previous_rounds_ema(teacher_dir, reference):
    first = load_file(teacher_file(reference, 0))
    assert_same_tensors(first, weights(teacher_dir, "ema.safetensors"))
    third = load_file(teacher_file(reference, 2))
    assert_same_tensors(third, load_file(reference / "checkpoints/step-000004/ema.safetensors"))
    assert any(not torch.equal(first[k], third[k]) for k in first)  # the rounds trained
    assert "distill" in (reference / "distill.yaml").read_text()


@pytest.mark.parametrize("stop_at", [3, 4], ids=["inside-round-2", "end-of-round-2"])
def test_stopped_then_resumed_equals_never_stopped(teacher_dir, reference, stop_at):
    d = replace(SETTINGS, name=f"stopped-{stop_at}")
    run_dir = distill(teacher_dir, d, tensorboard=False, stop_at=stop_at)
    assert latest_checkpoint(run_dir).name == f"step-{stop_at:06d}"
    assert (run_dir / "distill.yaml").is_file()  # written first, so a killed run has it
    # round 2's teacher is round 1's EMA: kept on disk though keep_checkpoints prunes step 2
    second = load_file(teacher_file(run_dir, 1))
    assert_same_tensors(second, load_file(run_dir / "checkpoints/step-000002/ema.safetensors"))
    assert resume_distill(run_dir, tensorboard=False) == run_dir
    assert_same_distillation(run_dir, reference)
    assert not (run_dir / "checkpoints/step-000002").exists()
    assert "steps: 6" in (run_dir / "config.yaml").read_text()


def test_sigterm_exits_as_train_does_and_resume_continues(
    teacher_dir, reference, monkeypatch, capsys
):
    real_step = step_module.train_step

    def step_then_signal(state, batches, generator, step):
        out = real_step(state, batches, generator, step)
        if step == 4:  # the signal arrives during step 5, inside round 3
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr("difflab.training.loop.train_step", step_then_signal)
    assert main(["distill", str(teacher_dir), *ITEMS, "distill.name=killed"]) == 128 + 15
    run_dir = teacher_dir.with_name("killed")
    err = capsys.readouterr().err
    assert err == (
        "difflab: stopped by SIGTERM after step 5 with a checkpoint; continue with "
        f"`difflab distill --resume {run_dir}`\n"
    )
    monkeypatch.undo()
    assert main(["distill", "--resume", str(run_dir)]) == 0
    assert f"run folder: {run_dir}" in capsys.readouterr().out
    assert_same_distillation(run_dir, reference)
    assert main(["distill", "--resume", str(run_dir)]) == 0  # finished: nothing more to do
    assert_same_distillation(run_dir, reference)


def test_train_resume_of_a_distilled_run_is_refused(reference, capsys):
    assert main(["train", "--resume", str(reference)]) == 2
    assert capsys.readouterr().err == (
        f"difflab: error: {reference} is a distilled run; continue it with "
        f"`difflab distill --resume {reference}`\n"
    )


@pytest.mark.parametrize("kind", ["training run", "empty folder"])
def test_distill_resume_of_a_folder_that_is_no_distillation_is_an_error(
    teacher_dir, tmp_path, capsys, kind
):
    folder = teacher_dir if kind == "training run" else tmp_path
    assert main(["distill", "--resume", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"difflab: error: {folder} is not a distilled")
    assert not (folder / "teachers").exists()


@pytest.mark.parametrize(
    "text,named",
    [("distill: [1\n", "is not valid YAML"), ("teacher_run: runs/x\n", "no 'distill' settings")],
    ids=["broken", "cut-short"],
)
def test_a_bad_distill_yaml_is_one_line_naming_it(tmp_path, capsys, text, named):
    """A distill.yaml that does not parse, or lost its settings, is never resumed with
    default settings."""
    (tmp_path / "distill.yaml").write_text(text)
    assert main(["distill", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "distill.yaml") in err and named in err


def test_distill_resume_takes_no_teacher_or_overrides(reference, capsys):
    assert main(["distill", "--resume", str(reference), "distill.lr=1"]) == 2
    assert "drop 'distill.lr=1'" in capsys.readouterr().err
    assert main(["distill", "--resume", str(reference), "--dry-run"]) == 0
    assert "teacher_steps: 8\n  target_steps: 1\n" in capsys.readouterr().out
