"""A tiny trained run to distill, shared by the distillation tests."""

from pathlib import Path

import pytest

from difflab.cli.main import main

TINY = str(Path(__file__).parents[1] / "training" / "tiny.yaml")


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory) -> Path:
    """A tiny digits run: 2 steps, no hooks but the final checkpoint; its distillations keep
    2 checkpoints (train.keep_checkpoints of tiny.yaml)."""
    root = tmp_path_factory.mktemp("runs")
    items = ["train.steps=2", "train.sample_every=0", "train.val_every=0", "train.seed=5"]
    assert main(["train", TINY, f"run.root={root}", *items]) == 0
    return root / "tiny"
