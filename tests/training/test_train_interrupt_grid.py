"""Ctrl-C during a sample grid: acknowledged while the grid is still being drawn, the grid stops
at the next sampler step, the steps done are checkpointed, and the run resumes exactly."""

import os
import signal
from pathlib import Path

import pytest

from difflab.config.recipes import load_config
from difflab.runs.checkpoint import latest_checkpoint
from difflab.runs.metrics import read_metrics
from difflab.training import periodic as hooks
from difflab.training.loop import train
from difflab.training.signals import ACKNOWLEDGEMENT, Interrupted

TINY = str(Path(__file__).with_name("tiny.yaml"))
GRID_STEPS = 6


def _config(root: Path, name: str, *extra: str):
    items = [f"run.root={root}", f"run.name={name}", f"sample.steps={GRID_STEPS}"]
    return load_config(TINY, [*items, "train.checkpoint_every=4", *extra])


def _losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir) if "loss" in r]


def test_sigint_during_a_grid_is_acknowledged_stops_it_and_resumes(tmp_path, monkeypatch, capfd):
    real = hooks.sample_images
    seen: list[int] = []  # the grid's sampler steps, after the signal
    acknowledged = []  # whether the acknowledgement was on stderr, mid-grid

    def instrumented_grid(*args, callback, **kwargs):
        def observed(i, *rest):
            if not seen:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C at the grid's first sampler step
                acknowledged.append(ACKNOWLEDGEMENT.format(name="SIGINT") in capfd.readouterr().err)
            seen.append(i)
            callback(i, *rest)

        return real(*args, callback=observed, **kwargs)

    monkeypatch.setattr(hooks, "sample_images", instrumented_grid)
    with pytest.raises(Interrupted, match="SIGINT after step 2"):
        train(_config(tmp_path, "stopped"), tensorboard=False)
    monkeypatch.undo()
    run_dir = tmp_path / "stopped"
    assert acknowledged == [True]  # printed before the grid went on to its next step
    assert seen == [0]  # the grid of GRID_STEPS steps stopped at the first after the signal
    assert latest_checkpoint(run_dir).name == "step-000002"  # due only at 4: written on stop
    assert not list((run_dir / "samples").glob("step-000002-*.png"))
    assert not [r for r in read_metrics(run_dir) if "val_loss" in r]  # validation skipped
    resumed = train(_config(tmp_path, "stopped", f"train.resume={run_dir}"), tensorboard=False)
    straight = train(_config(tmp_path, "straight"), tensorboard=False)
    assert latest_checkpoint(resumed).name == "step-000004"
    assert _losses(resumed) == _losses(straight)  # no step lost or repeated
