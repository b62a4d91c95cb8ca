"""A state.pt whose unpickling would run code is refused (the code never runs) unless the
checkpoint is trusted: `--trust-checkpoint` on `train --resume` and `sample`, or trust=True."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from difflab.cli.main import main
from difflab.config.recipes import load_config
from difflab.core.errors import CheckpointError
from difflab.core.hashing import file_sha256
from difflab.runs.checkpoint import FILES, MARKER, load_checkpoint
from difflab.training.loop import train

TINY = str(Path(__file__).parents[1] / "training" / "tiny.yaml")


class CreatesFile:
    """Unpickling this calls open(path, "w"): the file appears if the pickle is executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    overrides = [f"run.root={root}", "train.steps=2", "train.sample_every=0", "train.val_every=0"]
    return train(load_config(TINY, overrides), tensorboard=False)


def _poison(run_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the run whose only checkpoint holds a malicious state.pt with a manifest that
    matches (an attacker can recompute hashes); returns (run folder, the file it would make)."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    target = tmp_path / "pwned"
    ckpt = run / "checkpoints" / "step-000002"
    state = torch.load(ckpt / "state.pt", weights_only=True)
    torch.save({**state, "payload": CreatesFile(target)}, ckpt / "state.pt")
    manifest = {name: file_sha256(ckpt / name) for name in FILES}
    (ckpt / MARKER).write_text(json.dumps({"step": 2, "sha256": manifest}))
    return run, target


def test_malicious_pickle_is_refused_and_never_runs(clean_run, tmp_path):
    run, target = _poison(clean_run, tmp_path)
    ckpt = run / "checkpoints" / "step-000002"
    refused = r"needs full pickle to load \(Unsupported global: .*open\).*--trust-checkpoint"
    with pytest.raises(CheckpointError, match=refused) as err:
        load_checkpoint(ckpt)
    assert str(ckpt / "state.pt") in str(err.value)
    assert not target.exists()


@pytest.mark.parametrize("command", ["sample", "resume"])
def test_cli_refuses_without_the_flag_and_trusts_with_it(clean_run, tmp_path, capsys, command):
    run, target = _poison(clean_run, tmp_path)
    if command == "sample":
        argv = ["sample", str(run), "--num", "2", "--steps", "1", "--out", str(tmp_path / "s.png")]
    else:
        argv = ["train", "--resume", str(run), "train.steps=3", "train.progress=false"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--trust-checkpoint" in err and "state.pt" in err
    assert not target.exists()
    # Trusting runs the pickle: exactly what the flag's help warns about.
    assert main([*argv, "--trust-checkpoint"]) == 0
    assert target.exists()
