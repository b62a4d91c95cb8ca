"""A start that fails leaves no run folder behind: what validation refuses is refused before the
folder exists, and a folder that the start created is removed when training failed before its
first step (so the next try keeps the name). A folder the start did not create is kept."""

from pathlib import Path

import pytest

from difflab.config.recipes import load_config
from difflab.core.errors import ConfigError, TrainingError
from difflab.training import batches, loop
from difflab.training.loop import train

TINY = str(Path(__file__).parents[1] / "training" / "tiny.yaml")
FAST = ["train.sample_every=0", "train.val_every=0", "train.batch_size=4"]


def _config(root: Path, *overrides: str):
    return load_config(TINY, [*FAST, f"run.root={root}", *overrides])


def test_a_batch_larger_than_the_data_leaves_no_folder(tmp_path):
    with pytest.raises(ConfigError, match="train.batch_size"):
        train(_config(tmp_path, "train.batch_size=100000"), tensorboard=False)
    assert list(tmp_path.iterdir()) == []


def test_a_batch_that_does_not_divide_by_the_processes_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(batches, "world_size", lambda: 2)
    with pytest.raises(ConfigError, match="world size"):
        train(_config(tmp_path, "train.batch_size=63"), tensorboard=False)
    assert list(tmp_path.iterdir()) == []


def _failing_step(*args, **kwargs):
    raise TrainingError("too many unreadable images (data.max_bad_fraction)")


def test_a_run_that_fails_before_its_first_step_is_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "train_step", _failing_step)
    with pytest.raises(TrainingError):
        train(_config(tmp_path), tensorboard=True)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_resume_keeps_the_run(tmp_path, monkeypatch):
    run = train(_config(tmp_path, "train.steps=2"), tensorboard=False)
    monkeypatch.setattr(loop, "train_step", _failing_step)
    with pytest.raises(TrainingError):
        train(_config(tmp_path, "train.steps=4", f"train.resume={run}"), tensorboard=False)
    assert (run / "checkpoints" / "step-000002" / "COMPLETE").is_file()


def test_a_folder_made_beforehand_is_kept(tmp_path, monkeypatch):
    (tmp_path / "tiny").mkdir()  # empty: the run takes it, but did not create it
    monkeypatch.setattr(loop, "train_step", _failing_step)
    with pytest.raises(TrainingError):
        train(_config(tmp_path), tensorboard=False)
    assert (tmp_path / "tiny" / "config.yaml").is_file()


def test_a_run_that_failed_after_training_steps_is_kept(tmp_path, monkeypatch):
    real, calls = loop.train_step, []

    def fails_at_the_second(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs) if len(calls) == 1 else _failing_step()

    monkeypatch.setattr(loop, "train_step", fails_at_the_second)
    with pytest.raises(TrainingError):
        train(_config(tmp_path, "train.checkpoint_every=10"), tensorboard=False)
    assert (tmp_path / "tiny" / "metrics.jsonl").is_file()  # step 1's loss, kept to read
