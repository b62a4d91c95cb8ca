import argparse
import warnings
from pathlib import Path

import pytest

from difflab.cli.train import resolve
from difflab.config.recipes import load_config

TINY = Path(__file__).resolve().parents[1] / "training" / "tiny.yaml"


def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(load_config(str(TINY)).to_yaml())
    return run


def _args(run: Path, *overrides: str) -> argparse.Namespace:
    return argparse.Namespace(items=list(overrides), resume=str(run), trust_checkpoint=False)


@pytest.mark.parametrize(
    "override,named",
    [
        ("train.seed=123", "train.seed"),
        ("train.grad_accum=3", "train.grad_accum"),
        ("data.flip=true", "data"),
    ],
)
def test_resume_warns_when_exactness_keys_change(tmp_path, override, named):
    with pytest.warns(UserWarning, match=f"changed {named}"):
        resolve(_args(_run_dir(tmp_path), override))


def test_resume_is_quiet_for_longer_training(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = resolve(_args(_run_dir(tmp_path), "train.steps=50"))
    assert config.train.steps == 50
