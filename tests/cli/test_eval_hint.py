"""`difflab eval RUN --metric hint`: a ControlNet run's samples drawn under the test split's
hints and labels and scored against them; runs and sources without a metric are one-line
errors."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from difflab.cli.eval_hints import conditioning
from difflab.cli.main import main
from difflab.config.recipes import load_config
from difflab.data import load_dataset, make_hint
from difflab.evaluation import save_samples_npz
from difflab.runs.load import load_run
from difflab.training.loop import train

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("cv2") is None, reason="OpenCV is absent (difflab[hints])"
)
TINY = str(Path(__file__).resolve().parents[1] / "training" / "tiny.yaml")
QUIET = ["train.steps=2", "train.sample_every=0", "train.val_every=0"]
SHAPES = ["data.dataset=shapes", "data.options={resolution: 8, count: 12}"]


def _train(root: Path, name: str, *overrides: str) -> Path:
    config = load_config(TINY, [f"run.root={root}", f"run.name={name}", *QUIET, *overrides])
    return train(config, tensorboard=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval-hint")
    base = _train(root, "base")
    shapes = _train(root, "shapes", *SHAPES)
    controlnet = [f"model.controlnet.base_run={base}"]
    return {
        "base": base,
        "canny": _train(root, "canny", *controlnet, "model.controlnet.hint=canny"),
        "blur": _train(root, "blur", *controlnet, "model.controlnet.hint=blur"),
        "segmentation": _train(
            root,
            "seg",
            *SHAPES,
            f"model.controlnet.base_run={shapes}",
            "model.controlnet.hint=segmentation",
            "model.controlnet.hint_options={source: labels}",
        ),
    }


def _eval(run: Path, tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "eval.json"
    argv = ["eval", str(run), "--metric", "hint", "--num", "6", "--steps", "2", "--out", str(out)]
    assert main([*argv, "--cache-dir", str(tmp_path / "cache"), *extra]) == 0
    return json.loads(out.read_text())


def test_eval_hint_scores_canny_samples_by_edge_f1(runs, tmp_path, capsys):
    record = _eval(runs["canny"], tmp_path)
    assert (record["hint"], record["hint_metric"], record["num_samples"]) == ("canny", "edge_f1", 6)
    assert 0.0 <= record["hint_fidelity"] <= 1.0 and record["hint_tolerance"] == 1
    assert f"hint edge_f1: {record['hint_fidelity']:.4f} (canny)" in capsys.readouterr().out


def test_eval_hint_trains_and_caches_a_segmentation_reextractor(runs, tmp_path):
    record = _eval(runs["segmentation"], tmp_path, "--reextractor-steps", "2")
    assert record["hint_metric"] == "miou" and 0.0 <= record["hint_fidelity"] <= 1.0
    folder = Path(record["hint_reextractor"])
    assert folder.parent == tmp_path / "cache" / "map-networks" and folder.name.startswith("shapes")
    assert _eval(runs["segmentation"], tmp_path, "--reextractor-steps", "2") == {
        **record, "time": json.loads((tmp_path / "eval.json").read_text())["time"]
    }  # fmt: skip


def test_samples_are_drawn_under_the_test_splits_hints_and_labels(runs):
    run = load_run(runs["canny"], weights="raw")
    args = argparse.Namespace(hint_image=None, hint_map=None)
    hints, labels = conditioning(args, run, 400)
    test = load_dataset("digits", split="test")  # 297 images: hints of all, labels cycled
    expected = make_hint("canny")({"image": test.images.float() / 127.5 - 1.0})["hint"]
    assert torch.equal(hints, expected)
    assert labels == [int(test.labels[i % 297]) for i in range(400)]


def _fails(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("difflab: error: "), err
    for word in words:
        assert word in err, err


def test_runs_and_sources_without_a_hint_metric_are_one_line_errors(runs, tmp_path, capsys):
    argv = ["--metric", "hint", "--num", "2", "--steps", "2"]
    _fails(capsys, ["eval", str(runs["base"]), *argv], "needs a ControlNet run", "base_run")
    _fails(capsys, ["eval", str(runs["blur"]), *argv], "'blur' has no fidelity metric", "canny")
    samples = tmp_path / "samples.npz"
    save_samples_npz(samples, torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    _fails(capsys, ["eval", str(samples), *argv[:2]], "needs a ControlNet run folder")
