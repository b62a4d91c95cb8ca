"""A resume is checked before anything is written: a changed model is one line naming the
first tensor that differs, fewer steps than the checkpoint are refused by key, and the CLI
resumes one way (--resume). Switching the network drops the recipe's network options."""

import hashlib
import warnings
from pathlib import Path

import pytest

from difflab.cli.main import main
from difflab.config.recipes import load_config
from difflab.runs.load import build_denoiser
from difflab.training.loop import train

TINY = str(Path(__file__).parents[1] / "training" / "tiny.yaml")
FAST = ["train.sample_every=0", "train.val_every=0", "train.batch_size=4"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    return train(load_config(TINY, [*FAST, f"run.root={root}"]), tensorboard=False)


def _snapshot(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("difflab: error: "), err
    return err


def test_resume_that_changes_the_model_writes_nothing_and_names_the_tensor(run, capsys):
    before = _snapshot(run)
    with pytest.warns(UserWarning, match="changed model"):
        err = _one_line_error(
            capsys, ["train", "--resume", str(run), "model.options.base_channels=16"]
        )
    assert "model.safetensors: tensor 'time_embed.mlp.0.weight' is [32, 8]" in err
    assert "[64, 16]" in err
    assert _snapshot(run) == before


def test_resume_to_fewer_steps_than_the_checkpoint_is_refused(run, capsys):
    before = _snapshot(run)
    err = _one_line_error(capsys, ["train", "--resume", str(run), "train.steps=3"])
    assert "'train.steps' is 3" in err and "step 4" in err
    assert _snapshot(run) == before


@pytest.mark.parametrize("extra", [[], ["--resume", "elsewhere"]])
def test_train_resume_as_a_key_is_refused_by_name(run, capsys, extra):
    before = _snapshot(run)
    source = [] if extra else [TINY]
    err = _one_line_error(capsys, ["train", *source, f"train.resume={run}", *extra])
    assert "train.resume" in err
    assert _snapshot(run) == before


def test_switching_the_network_drops_the_recipe_options():
    with pytest.warns(UserWarning, match="base_channels"):
        config = load_config(TINY, ["model.network=dit-tiny"])
    assert config.model.options == {}
    build_denoiser(config, in_channels=1, image_size=8, num_classes=10)  # builds: no options
    with pytest.warns(UserWarning, match="dropped"):
        config = load_config(TINY, ["model.options.patch_size=4", "model.network=dit-tiny"])
    assert config.model.options == {"patch_size": 4}


def test_naming_the_same_network_keeps_the_recipe_options():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = load_config(TINY, ["model.network=unet-tiny"])
    assert config.model.options["base_channels"] == 8


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("trainer: {epochs: 3}\n")  # another tool's folder
    err = _one_line_error(capsys, ["report", str(tmp_path)])
    assert "not a difflab run folder" in err and "model.json" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]
