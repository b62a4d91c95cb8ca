"""W&B logging mirrors the run: the resolved config, every numeric record at its step, the
sample grids; a resumed run continues the same W&B run. A recording stand-in for the wandb
module checks the calls; a real offline run is checked when wandb is installed."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from difflab.config.recipes import load_config
from difflab.core.errors import ConfigError
from difflab.runs.metrics import read_metrics
from difflab.training.loop import train

TINY = str(Path(__file__).with_name("tiny.yaml"))


class FakeRun:
    def __init__(self, **kwargs):
        self.init = kwargs
        self.logged: list[tuple[dict, int]] = []
        self.finished = False
        self.exit_code = None

    def log(self, data, step):
        self.logged.append((data, step))

    def finish(self, exit_code=None):
        self.finished, self.exit_code = True, exit_code


@pytest.fixture
def fake_wandb(monkeypatch):
    module = types.ModuleType("wandb")
    module.__spec__ = types.SimpleNamespace(name="wandb")  # found by importlib.util.find_spec
    module.runs = []

    def init(**kwargs):
        module.runs.append(FakeRun(**kwargs))
        return module.runs[-1]

    module.init = init
    module.Image = lambda path: ("image", path)
    monkeypatch.setitem(sys.modules, "wandb", module)
    return module


def test_wandb_run_mirrors_metrics_and_grids(tmp_path, fake_wandb):
    config = load_config(TINY, [f"run.root={tmp_path}", "run.wandb=offline", "run.name=w"])
    run_dir = train(config, tensorboard=False)
    (run,) = fake_wandb.runs
    assert run.init["mode"] == "offline" and run.init["project"] == "difflab"
    assert run.init["name"] == "w" and run.init["dir"] == str(run_dir)
    assert run.init["config"] == config.to_dict()
    assert run.finished and run.exit_code == 0
    scalars = [(d, step) for d, step in run.logged if "loss" in d or "val_loss" in d]
    expected = [r for r in read_metrics(run_dir) if "loss" in r or "val_loss" in r]
    assert [step for _, step in scalars] == [r["step"] for r in expected]
    for (data, _), record in zip(scalars, expected, strict=True):
        for key, value in data.items():
            assert record[key] == value
    images = [(d, step) for d, step in run.logged if any(k.startswith("samples/") for k in d)]
    assert [(sorted(d), step) for d, step in images] == [
        (["samples/ema"], 2),
        (["samples/raw"], 2),
        (["samples/ema"], 4),
        (["samples/raw"], 4),
    ]
    assert images[0][0]["samples/ema"] == ("image", str(run_dir / "samples/step-000002-ema.png"))


def test_a_run_ended_by_an_exception_is_a_failed_wandb_run(tmp_path, fake_wandb, monkeypatch):
    """Finished with exit code 1, not shown as a run that completed (exit code 0)."""

    def diverged(*args, **kwargs):
        raise RuntimeError("diverged")

    monkeypatch.setattr("difflab.training.loop.train_step", diverged)
    config = load_config(TINY, [f"run.root={tmp_path}", "run.wandb=offline"])
    with pytest.raises(RuntimeError, match="diverged"):
        train(config, tensorboard=False)
    (run,) = fake_wandb.runs
    assert run.finished and run.exit_code == 1


def test_resume_continues_the_same_wandb_run(tmp_path, fake_wandb):
    common = [f"run.root={tmp_path}", "run.wandb=online", "run.name=r"]
    first = train(load_config(TINY, common), tensorboard=False, stop_at=2)
    train(load_config(TINY, [*common, f"train.resume={first}"]), tensorboard=False)
    a, b = fake_wandb.runs
    assert a.init["id"] == b.init["id"] and b.init["resume"] == "allow"
    assert (first / "wandb_id.txt").read_text() == a.init["id"]


def test_off_by_default_and_a_missing_wandb_is_a_config_error(tmp_path, monkeypatch):
    assert load_config(TINY, []).run.wandb == "off"
    monkeypatch.setitem(sys.modules, "wandb", None)  # import fails, find_spec raises
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"run\.wandb.*pip install 'difflab\[wandb\]'"):
        load_config(TINY, ["run.wandb=offline"])
    with pytest.raises(ConfigError, match="run.wandb"):
        load_config(TINY, ["run.wandb=sometimes"])


def test_real_wandb_offline_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="the wandb extra is not installed")
    monkeypatch.setenv("WANDB_SILENT", "true")
    config = load_config(
        TINY, [f"run.root={tmp_path}", "run.wandb=offline", "train.sample_every=0"]
    )
    run_dir = train(config, tensorboard=False)
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and offline[0].name.endswith((run_dir / "wandb_id.txt").read_text())
