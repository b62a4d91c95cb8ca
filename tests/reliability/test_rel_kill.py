"""kill -9 (mid-step and mid-save) and SIGTERM/SIGINT, then resume: the losses equal those of
an uninterrupted run bit for bit. The killed runs are real `difflab train` subprocesses."""

import os
import signal
import sys
from pathlib import Path

import pytest

from difflab.config.recipes import load_config
from difflab.runs.checkpoint import MARKER, latest_checkpoint
from difflab.training import step as step_module
from difflab.training.loop import train
from difflab.training.signals import ACKNOWLEDGEMENT, Interrupted

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import faults  # noqa: E402

STEPS = 8


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[int, float]:
    """Losses of the uninterrupted run, in this process."""
    root = tmp_path_factory.mktemp("reference")
    run_dir = train(load_config(str(faults.TINY), faults.overrides(root, STEPS)), tensorboard=False)
    return faults.losses(run_dir)


def _resume_to_the_end(tmp_path: Path, run_dir: Path) -> None:
    """`difflab train --resume` in this process (a subprocess costs seconds of imports)."""
    resume = [*faults.overrides(tmp_path, STEPS), f"train.resume={run_dir}"]
    assert train(load_config(str(faults.TINY), resume), tensorboard=False) == run_dir


def test_kill9_mid_save_then_resume(tmp_path, reference):
    run_dir, args = tmp_path / "faults", faults.overrides(tmp_path, STEPS)
    partial = run_dir / "checkpoints" / ".tmp-step-000004"
    proc = faults.start(run_dir, args, hold=partial.name)  # waits there to be killed
    assert faults.kill_when(proc, lambda: (partial / "model.safetensors").is_file())
    assert not (partial / MARKER).exists()  # killed between model and marker
    assert latest_checkpoint(run_dir).name == "step-000002"
    assert faults.agrees(run_dir, reference)  # steps 3, 4 were logged; resume redoes them
    _resume_to_the_end(tmp_path, run_dir)
    assert faults.losses(run_dir) == reference
    assert len(reference) == STEPS
    assert not partial.exists()  # the next save cleared the killed one's folder


@pytest.mark.slow
def test_sigterm_subprocess_checkpoints_exits_143_and_resumes(tmp_path, reference):
    run_dir, args = tmp_path / "faults", faults.overrides(tmp_path, STEPS)
    proc = faults.start(run_dir, args)
    assert faults.kill_when(proc, faults.at_step(run_dir, 3), signal.SIGTERM)
    err = proc.stderr.read()
    assert proc.returncode == 128 + signal.SIGTERM
    acknowledged, err = err.splitlines()
    assert acknowledged == ACKNOWLEDGEMENT.format(name="SIGTERM")
    assert err.startswith("difflab: stopped by SIGTERM after step ")
    stopped = int(err.split("after step ")[1].split()[0])
    assert 3 <= stopped < STEPS and f"--resume {run_dir}" in err
    assert latest_checkpoint(run_dir).name == f"step-{stopped:06d}"
    _resume_to_the_end(tmp_path, run_dir)
    assert faults.losses(run_dir) == reference


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_finishes_the_step_checkpoints_then_resumes(tmp_path, monkeypatch, reference, sig):
    real_step = step_module.train_step
    before = signal.getsignal(sig)

    def step_then_signal(state, batches, generator, step):
        out = real_step(state, batches, generator, step)
        if step == 2:  # the signal arrives during step 3 (0-based 2)
            os.kill(os.getpid(), sig)
        return out

    monkeypatch.setattr("difflab.training.loop.train_step", step_then_signal)
    config = load_config(str(faults.TINY), faults.overrides(tmp_path, STEPS))
    with pytest.raises(Interrupted, match=f"{sig.name} after step 3") as stopped:
        train(config, tensorboard=False)
    assert stopped.value.exit_status == 128 + sig
    assert signal.getsignal(sig) is before  # handler restored
    run_dir = tmp_path / "faults"
    assert latest_checkpoint(run_dir).name == "step-000003"
    monkeypatch.undo()
    _resume_to_the_end(tmp_path, run_dir)
    assert faults.losses(run_dir) == reference


@pytest.mark.slow
def test_repeated_random_kills_never_diverge(tmp_path):
    """Six SIGKILLs, at random steps or in the middle of a save, each followed by a resume."""
    cycles, divergences = faults.run_cycles(tmp_path, cycles=6, steps=16, seed=1)
    assert (cycles, divergences) == (6, 0)


def test_signal_during_the_last_step_ends_normally(tmp_path, monkeypatch):
    real_step = step_module.train_step

    def step_then_signal(state, batches, generator, step):
        out = real_step(state, batches, generator, step)
        if step == STEPS - 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr("difflab.training.loop.train_step", step_then_signal)
    config = load_config(str(faults.TINY), faults.overrides(tmp_path, STEPS))
    run_dir = train(config, tensorboard=False)  # the run is complete: nothing to resume
    assert latest_checkpoint(run_dir).name == f"step-{STEPS:06d}"
