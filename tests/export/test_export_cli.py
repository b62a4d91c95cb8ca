"""`difflab export` then `difflab sample --backend onnxruntime|openvino` draws the same uint8
images as `--backend torch` for the same seeds; stale exports and bad options are one-line
errors."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from difflab.cli.main import main

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

TINY = str(Path(__file__).parents[1] / "training" / "tiny.yaml")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    # a large step and EMA = the model: the network's output is far from its zero start
    args = ["train.steps=2", "train.lr=0.03", "train.ema_decay=0"]
    assert main(["train", TINY, f"run.root={root}", *args]) == 0
    run = root / "tiny"
    for fmt in ("onnx", "openvino"):
        assert main(["export", str(run), "--format", fmt, "--exporter", "torchscript"]) == 0
    return run


def _images(run_dir, out, backend, *extra):
    args = ["sample", str(run_dir), "-n", "6", "--labels", "1,4,7", "--guidance", "2",
            "--out", str(out), "--backend", backend, *extra]  # fmt: skip
    assert main(args) == 0
    return np.load(out)["arr_0"]


@pytest.mark.parametrize("flags", [["--steps", "3"], ["--sampler", "dpmpp-2m", "--steps", "4",
                                   "--batch-size", "4"]])  # fmt: skip
def test_backends_draw_the_same_images(run_dir, tmp_path, flags):
    want = _images(run_dir, tmp_path / "torch.npz", "torch", *flags)
    assert len(np.unique(want)) > 10  # images, not a constant
    for backend in ("onnxruntime", "openvino"):
        got = _images(run_dir, tmp_path / f"{backend}.npz", backend, *flags)
        # float noise of the runtimes (about 1e-6) may round a pixel across a half level
        diff = np.abs(got.astype(int) - want)
        assert diff.max() <= 1 and (diff > 0).mean() <= 0.01, backend


def test_export_folder_is_complete_and_alone(run_dir):
    assert sorted(p.name for p in (run_dir / "export").iterdir()) == ["onnx", "openvino"]
    spec = json.loads((run_dir / "export" / "openvino" / "export.json").read_text())
    assert spec["graphs"] == {"network": "network.xml", "decoder": None}
    assert spec["inputs"] == ["x", "t", "labels"] and spec["num_classes"] == 10
    assert spec["checkpoint"]["name"] == "step-000002"


def test_a_stale_export_is_refused(run_dir, tmp_path, capsys):
    newer = run_dir / "checkpoints" / "step-000009"
    shutil.copytree(run_dir / "checkpoints" / "step-000002", newer)
    try:
        args = ["sample", str(run_dir), "-n", "2", "--out", str(tmp_path / "a.npz"),
                "--backend", "onnxruntime"]  # fmt: skip
        assert main(args) == 2
    finally:
        shutil.rmtree(newer)
    err = capsys.readouterr().err
    assert "is stale" in err and "step-000009" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--precision", "fp16"], "--precision fp16 needs --format openvino"),
        (
            ["--format", "openvino", "--precision", "int8", "--int8-time-groups", "0"],
            "--int8-time-groups and --int8-calibration must be at least 1",
        ),
        (
            ["--format", "openvino", "--precision", "int8", "--int8-time-groups", "999"],
            "int8 time groups must be 1..",
        ),
        (["--out", "x"], None),
    ],
)
def test_export_errors_are_one_line(run_dir, tmp_path, capsys, args, message):
    if message is None:  # not a run folder
        assert main(["export", str(tmp_path), *args]) == 2
        message = "is not a difflab run folder"
    else:
        assert main(["export", str(run_dir), *args, "--out", str(tmp_path / "e")]) == 2
        assert not (tmp_path / "e").exists()
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_int8_calibration_feeds_are_training_images_noised_at_grid_times(run_dir):
    from difflab.export import deploy_grid
    from difflab.export.calibration import calibration_feeds, clean_batch
    from difflab.runs.load import load_run

    run = load_run(run_dir)
    feeds = calibration_feeds(run, {"x": None, "t": None, "labels": None}, num=40)
    grid = deploy_grid(run.denoiser.schedule, run.config.sample)
    step = np.arange(40) % grid.steps  # the noisy grid points, cycled
    t = np.concatenate([f["t"] for f in feeds])
    np.testing.assert_array_equal(t, grid.network_t[step].astype(np.float32))
    labels = np.concatenate([f["labels"] for f in feeds])
    assert (labels[1::2] == -1).all() and ((labels[::2] >= 0) & (labels[::2] < 10)).all()
    x0 = clean_batch(run, 40)["image"].numpy()
    x = np.concatenate([f["x"] for f in feeds])
    eps = (x - grid.alpha[step, None, None, None] * x0) / grid.sigma[step, None, None, None]
    assert abs(eps.mean()) < 0.1 and abs(eps.std() - 1) < 0.1  # standard normal noise


def test_int8_time_groups_calibrate_on_their_own_grid_times(run_dir):
    from difflab.deploy.time_groups import step_groups
    from difflab.export import deploy_grid
    from difflab.export.calibration import calibration_feeds, grouped_calibration
    from difflab.runs.load import load_run

    run = load_run(run_dir)
    inputs = {"x": None, "t": None, "labels": None}
    grid = deploy_grid(run.denoiser.schedule, run.config.sample)
    sets, bounds = grouped_calibration(run, inputs, 2, num=12)
    runs, want_bounds = step_groups(grid.network_t, 2)
    assert bounds == want_bounds and [len(s) for s in sets] == [12, 12]
    for feeds, steps in zip(sets, runs, strict=True):
        t = np.concatenate([f["t"] for f in feeds])
        assert set(t.tolist()) == set(grid.network_t[steps].astype(np.float32).tolist())
        labels = np.concatenate([f["labels"] for f in feeds])
        assert (labels[1::2] == -1).all() and (labels[::2] >= 0).all()
    (one,), _ = grouped_calibration(run, inputs, 1, num=12)
    for a, b in zip(one, calibration_feeds(run, inputs, num=12), strict=True):
        assert all(np.array_equal(a[k], b[k]) for k in a)


def test_variations_of_an_export_without_embeddings_are_a_one_line_error(run_dir, tmp_path, capsys):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "x.png")
    args = ["sample", str(run_dir), "-n", "1", "--out", str(tmp_path / "a.npz"),
            "--backend", "onnxruntime", "--variations", str(tmp_path / "x.png")]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "is not an unCLIP decoder" in err and len(err.strip().splitlines()) == 1
