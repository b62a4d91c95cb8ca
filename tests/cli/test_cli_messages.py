"""Messages a user reads: a file PIL cannot decode is named (not PIL's in-memory buffer), each
warning is one `difflab: warning:` line shown once, and errors say what the user can act on."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from difflab.cli.main import main
from difflab.core.errors import ConfigError
from difflab.distillation.config import build_distill_settings

TINY = str(Path(__file__).parents[1] / "training" / "tiny.yaml")
QUIET = ["train.sample_every=0", "train.val_every=0"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A 4-step tiny digits run with checkpoints at steps 2 and 4."""
    root = tmp_path_factory.mktemp("runs")
    assert main(["train", TINY, f"run.root={root}", *QUIET]) == 0
    return root / "tiny"


def _warnings(err: str, word: str) -> list[str]:
    return [line for line in err.splitlines() if word in line]


def _stderr(argv: list[str]) -> str:
    """The stderr of `python -m difflab ARGV` (a subprocess: pytest records warnings itself)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "difflab", *argv], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_an_undecodable_image_is_named_once_in_one_warning_line(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "data" / name / f"{i}.png")
    bad = tmp_path / "data" / "cat" / "bad.png"
    bad.write_bytes(b"not an image at all")
    args = ["train", TINY, f"run.root={tmp_path}", "data.dataset=image-folder", *QUIET]
    args += [f"data.root={tmp_path / 'data'}", "data.max_bad_fraction=0.3", "train.steps=1"]
    err = _stderr([*args, "train.batch_size=4"])
    (line,) = _warnings(err, "bad.png")
    assert line.startswith("difflab: warning: skipped 1 of 9 unreadable images")
    assert f"{bad} (cannot decode: not an image PIL can identify" in line
    assert "BytesIO" not in err and "UserWarning" not in err


def test_a_checkpoint_fallback_is_warned_once(run_dir, tmp_path):
    broken = tmp_path / "run"
    shutil.copytree(run_dir, broken)
    (broken / "checkpoints" / "step-000004" / "model.safetensors").write_bytes(b"garbage")
    err = _stderr(["sample", str(broken), "--num", "2", "--out", str(tmp_path / "s.png")])
    (line,) = _warnings(err, "falling back")
    assert line.startswith("difflab: warning: falling back to checkpoint ")
    assert "step-000002" in line and "UserWarning" not in line


def test_a_classifier_without_noise_levels_points_to_the_cli_flag(run_dir, tmp_path, capsys):
    clf = tmp_path / "clf"
    assert main(["train-classifier", "digits", "--steps", "1", "--out", str(clf)]) == 0
    capsys.readouterr()
    out = str(tmp_path / "g.png")
    assert main(["sample", str(run_dir), "--classifier", str(clf), "--out", out]) == 2
    assert "`difflab train-classifier --noisy`" in capsys.readouterr().err


def test_an_unknown_sub_key_suggests_a_sibling_not_its_section():
    with pytest.raises(ConfigError) as caught:
        build_distill_settings(["distill.foo=1"])
    assert str(caught.value) == "unknown config key 'distill.foo'"
    with pytest.raises(ConfigError, match=r"did you mean 'distill.teacher_steps'\?"):
        build_distill_settings(["distill.teacher_step=1"])


def test_another_tools_run_folder_is_not_a_difflab_run(run_dir, tmp_path, capsys):
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / "config.yaml").write_text("trainer:\n  max_epochs: 3\nmodel:\n  lr: 0.1\n")
    (foreign / "model.json").write_text((run_dir / "model.json").read_text())
    assert main(["train", "--resume", str(foreign)]) == 2
    err = capsys.readouterr().err
    assert "unknown config key" in err  # a difflab section (model) beside a foreign one
    (foreign / "config.yaml").write_text("trainer:\n  max_epochs: 3\n")
    sample = ["sample", str(foreign), "--out", str(tmp_path / "s.png")]
    for argv in (["train", "--resume", str(foreign)], sample):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{foreign} is not a difflab run: " in err


def test_eval_of_a_missing_path_says_it_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["eval", str(missing), "--steps", "3"]) == 2
    err = capsys.readouterr().err
    assert f"{missing} does not exist" in err and "already drawn" not in err


def test_a_warning_from_two_places_is_one_line_and_others_keep_their_format():
    import warnings

    from difflab.cli.warning_lines import PACKAGE, warning_lines

    with warning_lines():
        first = warnings.formatwarning("x\ny", UserWarning, f"{PACKAGE}/session.py", 76)
        again = warnings.formatwarning("x\ny", UserWarning, f"{PACKAGE}/loop.py", 9)
        torch_own = warnings.formatwarning("z", UserWarning, "/site/torch/nn.py", 3)
    assert (first, again) == ("difflab: warning: x y\n", "")
    assert torch_own.startswith("/site/torch/nn.py:3: UserWarning: z")
