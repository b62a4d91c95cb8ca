"""`difflab train-classifier`, `difflab eval` on a run, an .npz and an image folder, and the
in-training evaluation, all on a tiny digits run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from difflab.cli.main import main
from difflab.data import load_dataset
from difflab.evaluation import (
    ClassifierFeatures,
    classifier_accuracy,
    feature_statistics,
    frechet_distance,
    load_classifier,
    save_samples_npz,
)
from difflab.runs.metrics import read_metrics
from difflab.sampling.images import write_png_folder

TINY = str(Path(__file__).parents[1] / "training" / "tiny.yaml")
QUIET = ["train.sample_every=0", "train.val_every=0", "train.checkpoint_every=0"]


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("classifier") / "digits"
    assert (
        main(
            ["train-classifier", "digits", "--steps", "10", "--batch-size", "32", "--out", str(out)]
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, classifier_dir) -> Path:
    """4 steps with sample metrics of 6 EMA samples after steps 2 and 4."""
    root = tmp_path_factory.mktemp("runs")
    evaluation = ["train.eval_every=2", "train.eval_samples=6"]
    args = ["train", TINY, f"run.root={root}", *QUIET, *evaluation]
    assert main([*args, f"train.eval_classifier={classifier_dir}"]) == 0
    return root / "tiny"


@pytest.fixture(scope="module")
def digits_test():
    return load_dataset("digits", split="test")


def test_train_classifier_writes_a_loadable_classifier(classifier_dir, digits_test, capsys):
    classifier = load_classifier(classifier_dir)
    assert classifier.config.dataset == "digits" and not classifier.config.noisy
    accuracy = classifier_accuracy(classifier, digits_test.images, digits_test.labels)
    assert 0.0 <= accuracy <= 1.0


def test_train_classifier_prints_the_test_accuracy(tmp_path, digits_test, capsys):
    out = tmp_path / "clf"
    assert main(["train-classifier", "digits", "--steps", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    accuracy = classifier_accuracy(load_classifier(out), digits_test.images, digits_test.labels)
    assert f"test accuracy: {accuracy:.4f} (297 digits/test images)" in printed


def test_train_classifier_noisy_goes_to_the_cache(tmp_path, capsys):
    args = ["train-classifier", "digits", "--steps", "3", "--noisy", "--cache-dir", str(tmp_path)]
    assert main(args) == 0
    (folder,) = (tmp_path / "classifiers").iterdir()
    assert folder.name.startswith("digits-") and load_classifier(folder).config.noisy
    assert "training noise levels" in capsys.readouterr().out


def test_eval_of_a_run_prints_and_writes_the_metrics(run_dir, classifier_dir, tmp_path, capsys):
    args = ["eval", str(run_dir), "--metric", "fid", "--metric", "kid", "--metric", "accuracy"]
    args += ["--num", "6", "--classifier", str(classifier_dir), "--cache-dir", str(tmp_path)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    result = json.loads((run_dir / "eval" / "eval-step-000004.json").read_text())
    assert result["metrics"] == ["fid", "kid", "accuracy"]
    assert result["num_samples"] == 6 and result["reference"] == "digits/test"
    assert (result["sampler"], result["steps"], result["weights"]) == ("ddim", 2, "ema")
    assert f"fid: {result['fid']:.4f}" in printed and f"accuracy: {result['accuracy']:.4f}"
    assert result["kid_subset_size"] == 6 and "kid: " in printed
    # The last in-training evaluation drew the same 6 images (seeds 0..5, labels 0..5, EMA
    # weights of step 4) and scored them against the same reference.
    last = [r for r in read_metrics(run_dir) if "eval_fid" in r][-1]
    assert last["eval_fid"] == pytest.approx(result["fid"], rel=1e-9, abs=1e-9)
    assert last["eval_accuracy"] == result["accuracy"]


def test_training_logs_sample_metrics_at_the_configured_steps(run_dir):
    records = [r for r in read_metrics(run_dir) if "eval_fid" in r]
    assert [r["step"] for r in records] == [2, 4]
    for r in records:
        assert r["eval_fid"] >= 0 and 0 <= r["eval_accuracy"] <= 1
        assert (r["eval_reference"], r["eval_features"]) == ("digits/test", "difflab-digits")


def test_eval_of_the_reference_itself(tmp_path, classifier_dir, digits_test, capsys):
    """The test split scored against itself: FID 0 and the classifier's own test accuracy; the
    .npz and the image folder of the same images give the same numbers."""
    npz = tmp_path / "test.npz"
    save_samples_npz(npz, digits_test.images, digits_test.labels)
    folder = tmp_path / "pngs"
    write_png_folder(digits_test.images, digits_test.labels, folder)
    common = ["--reference", "digits", "--classifier", str(classifier_dir)]
    common += ["--cache-dir", str(tmp_path / "cache")]
    assert main(["eval", str(npz), *common]) == 0
    assert main(["eval", str(folder), *common]) == 0
    from_npz = json.loads((tmp_path / "test-eval.json").read_text())
    from_folder = json.loads((tmp_path / "pngs-eval.json").read_text())
    classifier = load_classifier(classifier_dir)
    expected = classifier_accuracy(classifier, digits_test.images, digits_test.labels)
    assert from_npz["metrics"] == ["fid", "accuracy"] and from_npz["accuracy"] == expected
    assert abs(from_npz["fid"]) < 1e-6
    assert from_folder["accuracy"] == expected and from_folder["fid"] == from_npz["fid"]


def test_eval_fid_matches_the_library(tmp_path, classifier_dir, digits_test):
    """FID of 40 training digits against the test split, as computed by hand."""
    train = load_dataset("digits", split="train")
    npz = tmp_path / "some.npz"
    save_samples_npz(npz, train.images[:40])
    args = ["eval", str(npz), "--reference", "digits", "--classifier", str(classifier_dir)]
    assert main([*args, "--cache-dir", str(tmp_path), "--out", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["metrics"] == ["fid"]  # unlabelled samples: no accuracy
    features = ClassifierFeatures(load_classifier(classifier_dir))
    mu1, s1 = feature_statistics(features(train.images[:40]))
    mu2, s2 = feature_statistics(features(digits_test.images))
    assert result["fid"] == pytest.approx(frechet_distance(mu1, s1, mu2, s2), rel=1e-5)


def test_eval_trains_and_caches_a_classifier_on_demand(tmp_path, capsys):
    npz = tmp_path / "s.npz"
    save_samples_npz(npz, torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.arange(4))
    args = ["eval", str(npz), "--reference", "digits", "--metric", "accuracy"]
    args += ["--classifier-steps", "2", "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 0
    assert "trained the evaluation classifier" in capsys.readouterr().out
    assert main(args) == 0
    assert "trained" not in capsys.readouterr().out
    assert len(list((tmp_path / "cache" / "classifiers").iterdir())) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a zip", "is not an .npz (zip) archive"),
        ({"arr_0": np.zeros((2, 8, 8), np.uint8)}, "arr_0 must be uint8 [N, H, W, C]"),
        ({"arr_1": np.zeros(2, np.int64)}, "has no arr_0"),
    ],
)
def test_malformed_npz_is_one_line_and_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "bad.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.savez(path, **content)
    assert main(["eval", str(path), "--reference", "digits"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(path) in err


def test_samples_need_a_reference(tmp_path, capsys):
    path = tmp_path / "s.npz"
    save_samples_npz(path, torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    assert main(["eval", str(path)]) == 2
    assert "--reference" in capsys.readouterr().err


def test_accuracy_needs_labels(tmp_path, capsys):
    path = tmp_path / "s.npz"
    save_samples_npz(path, torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    assert main(["eval", str(path), "--reference", "digits", "--metric", "accuracy"]) == 2
    assert "needs labelled samples" in capsys.readouterr().err


def test_eval_of_an_unconditional_run_scores_fid_only(tmp_path, classifier_dir, capsys):
    args = ["train", TINY, f"run.root={tmp_path}", *QUIET, "train.steps=1"]
    assert main([*args, "model.class_conditional=false"]) == 0
    run = tmp_path / "tiny"
    common = ["--num", "4", "--classifier", str(classifier_dir), "--cache-dir", str(tmp_path)]
    assert main(["eval", str(run), *common, "--guidance", "3", "--seed", "7"]) == 0
    result = json.loads((run / "eval" / "eval-step-000001.json").read_text())
    assert result["metrics"] == ["fid"] and "accuracy" not in result
    assert (result["guidance"], result["seed"]) == (3.0, 7)
    capsys.readouterr()
    assert main(["eval", str(run), *common, "--metric", "accuracy"]) == 2
    assert "needs labelled samples" in capsys.readouterr().err
