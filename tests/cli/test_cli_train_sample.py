"""`difflab train` on a tiny config, then `difflab sample` in each output format."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from difflab.cli.main import main
from difflab.config.recipes import recipe_names
from difflab.runs.metrics import read_metrics

TINY = str(Path(__file__).parents[1] / "training" / "tiny.yaml")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    assert main(["train", TINY, f"run.root={root}", "train.steps=4"]) == 0
    return root / "tiny"


def test_train_writes_the_run_folder(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.yaml", "model.json", "metrics.jsonl", "samples", "checkpoints", "tb"} <= names
    assert (run_dir / "checkpoints" / "step-000004" / "COMPLETE").is_file()
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == [
        "step-000002-ema.png",
        "step-000002-raw.png",
        "step-000004-ema.png",
        "step-000004-raw.png",
    ]
    assert "steps: 4" in (run_dir / "config.yaml").read_text()
    assert any((run_dir / "tb").iterdir())
    val = [r for r in read_metrics(run_dir) if "val_loss" in r]
    assert [(r["step"], r["val_split"]) for r in val] == [(2, "test"), (4, "test")]


def test_train_twice_makes_a_new_folder(run_dir, capsys):
    assert main(["train", TINY, f"run.root={run_dir.parent}", "train.steps=1"]) == 0
    assert "tiny-2" in capsys.readouterr().out


def test_dry_run_prints_the_config_and_trains_nothing(tmp_path, capsys):
    assert main(["train", "mnist", "train.steps=7", f"run.root={tmp_path}", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dataset: mnist" in out and "steps: 7" in out
    assert not any(tmp_path.iterdir())


def test_recipes_lists_every_recipe(capsys):
    assert main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == recipe_names()  # pinned in test_train_config


def _sample(run_dir, out, *extra):
    args = ["sample", str(run_dir), "--num", "6", "--steps", "2", "--out", str(out), *extra]
    assert main(args) == 0


def test_sample_npz_folder_png(run_dir, tmp_path):
    _sample(run_dir, tmp_path / "s.npz", "--labels", "3-4", "--guidance", "2")
    data = np.load(tmp_path / "s.npz")
    assert data["arr_0"].shape == (6, 8, 8, 1) and data["arr_0"].dtype == np.uint8
    assert data["arr_1"].tolist() == [3, 4, 3, 4, 3, 4]
    _sample(run_dir, tmp_path / "imgs", "--weights", "raw")
    files = sorted(p.name for p in (tmp_path / "imgs").iterdir())
    assert files[0] == "000000_label0.png" and len(files) == 6
    assert np.asarray(Image.open(tmp_path / "imgs" / files[0])).shape == (8, 8)
    _sample(run_dir, tmp_path / "grid.png", "--labels", "7")
    assert Image.open(tmp_path / "grid.png").size == (6 * 9 + 1, 9 + 1)


def test_an_image_depends_only_on_its_seed(run_dir, tmp_path):
    _sample(run_dir, tmp_path / "a.npz", "--labels", "5", "--batch-size", "6")
    _sample(run_dir, tmp_path / "b.npz", "--labels", "5", "--batch-size", "4", "--seed", "2")
    a, b = np.load(tmp_path / "a.npz")["arr_0"], np.load(tmp_path / "b.npz")["arr_0"]
    np.testing.assert_array_equal(a[2:], b[:4])


def test_resume_continues_at_the_saved_step(run_dir, capsys):
    assert main(["train", "--resume", str(run_dir), "train.steps=5", "train.sample_every=0"]) == 0
    steps = [r["step"] for r in read_metrics(run_dir) if "loss" in r]
    assert steps == [1, 2, 3, 4, 5]
    assert (run_dir / "checkpoints" / "step-000005" / "COMPLETE").is_file()


def test_mnist_recipe_runs_a_few_steps(shared_data, tmp_path):
    args = [
        "train",
        "mnist",
        f"data.root={shared_data / 'mnist'}",
        f"run.root={tmp_path}",
        "data.val_split=null",
        "model.options={base_channels: 8, norm_groups: 4, attention_resolutions: [], dropout: 0}",
        "train.steps=2",
        "train.batch_size=4",
        "train.sample_every=0",
        "train.progress=false",
        "sample.steps=2",
    ]
    assert main(args) == 0
    assert (tmp_path / "mnist" / "checkpoints" / "step-000002" / "COMPLETE").is_file()


def test_cifar10_recipe_on_a_small_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            folder = tmp_path / "data" / split / name
            folder.mkdir(parents=True)
            for i in range(4):
                pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    args = ["train", "cifar10", f"data.root={tmp_path / 'data'}", f"run.root={tmp_path}"]
    args += [
        "model.options={base_channels: 8, norm_groups: 4, attention_resolutions: [], dropout: 0}",
        "train.steps=2",
        "train.batch_size=4",
        "train.progress=false",
        "sample.steps=2",
        "sample.num=2",
    ]
    assert main(args) == 0
    run_dir = tmp_path / "cifar10"
    assert (run_dir / "model.json").read_text().count('"cat"') == 1
    assert (run_dir / "samples" / "step-000002-ema.png").is_file()
