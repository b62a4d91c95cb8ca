"""Every bad input ends as one line `difflab: error: ...` and exit code 2, no traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from difflab.cli.main import main

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "tests" / "training" / "tiny.yaml")


def _fails(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("difflab: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err


def test_subprocess_unknown_key_is_one_line_exit_2():
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "difflab", "train", "train.stpes=5"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "difflab: error: unknown config key 'train.stpes' (did you mean 'train.steps'?)\n"
    )


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["train", "train.steps=ten"], ["train.steps", "an integer", "'ten'"]),
        (["train", "train.lr=0"], ["train.lr", "> 0"]),
        (["train", "nope"], ["unknown recipe 'nope'"]),
        (["train", "model.network=unet-huge", "--dry-run"], ["model.network", "unet-tiny"]),
        (["train", "data.dataset=imagenet"], ["imagenet", "digits"]),
        (["train", "missing.yaml"], ["missing.yaml"]),
        (["train", "digits", "mnist"], ["one recipe"]),
        (["frobnicate"], ["invalid choice", "frobnicate"]),
        (["sample"], ["--out"]),
        (["sample", "--out", "a.png"], ["RUN", "--cascade"]),
        (["sample", "x", "--num", "abc", "--out", "a.png"], ["--num", "abc"]),
        (["train", "--resume", "/nonexistent/run"], ["/nonexistent/run"]),
    ],
)
def test_usage_and_config_errors(capsys, argv, words):
    _fails(capsys, argv, *words)


def test_missing_data_folder(capsys, tmp_path):
    missing = tmp_path / "no-mnist"
    _fails(capsys, ["train", "mnist", f"data.root={missing}", f"run.root={tmp_path}"], "no-mnist")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    overrides = ["train.steps=2", "train.sample_every=0", "train.val_every=0", f"run.root={root}"]
    assert main(["train", TINY, *overrides]) == 0
    return root / "tiny"


def test_bad_sample_inputs(capsys, run_dir, tmp_path):
    out = str(tmp_path / "s.png")
    _fails(capsys, ["sample", str(run_dir), "--labels", "x-y", "--out", out], "--labels", "x-y")
    _fails(capsys, ["sample", str(run_dir), "--labels", "12", "--out", out], "label 12")
    _fails(capsys, ["sample", str(run_dir), "--out", str(tmp_path / "s.jpg")], "s.jpg")
    _fails(capsys, ["sample", str(tmp_path), "--out", out], str(tmp_path))
    _fails(capsys, ["sample", str(run_dir), "--sampler", "nope", "--out", out], "nope")
    _fails(
        capsys,
        ["sample", str(run_dir), "--prompt", "a cat", "--out", out],
        "--prompt",
        "'unet-tiny'",
    )


def test_corrupt_checkpoint_names_the_file(capsys, run_dir, tmp_path):
    weights = run_dir / "checkpoints" / "step-000002" / "ema.safetensors"
    weights.write_bytes(b"garbage")
    _fails(capsys, ["sample", str(run_dir), "--out", str(tmp_path / "s.png")], str(weights))


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("model.options={bogus: 1}", ["model.options.bogus", "'unet-tiny'", "base_channels"]),
        ("data.options={bogus: 1}", ["data.options.bogus", "'digits'"]),
        ("model.options={in_channels: 3}", ["model.options.in_channels"]),
    ],
)
def test_unknown_network_or_dataset_option_fails_the_dry_run(capsys, override, words):
    """An option the network's config or the dataset's loader does not take is named before
    anything runs, --dry-run included (it printed the config and exited 0)."""
    _fails(capsys, ["train", "--dry-run", override], *words)


def test_dit_and_image_folder_options_are_checked_against_their_own_fields(capsys):
    ok = ["model.network=dit-tiny", "model.options={patch_size: 4}", "--dry-run"]
    assert main(["train", *ok]) == 0
    capsys.readouterr()
    _fails(capsys, ["train", "model.network=dit-tiny", "model.options={base_channels: 8}"])
    image_folder = ["data.dataset=image-folder", "data.root=/nonexistent"]
    _fails(capsys, ["train", *image_folder, "data.options={bogus: 1}"], "data.options.bogus")
