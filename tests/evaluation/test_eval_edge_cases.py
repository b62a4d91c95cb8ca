"""Evaluation at its edges: FID of too few samples warns with the count it needs, KID with
nothing to resample reports no spread (and keeps a negative estimate), samples whose size is
not the reference's warn, and a second evaluation never replaces the first's JSON."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from difflab.cli.main import main
from difflab.data import load_dataset
from difflab.evaluation import kernel_inception_distance, mmd2_unbiased, save_samples_npz


@pytest.fixture(scope="module")
def clf(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clf") / "digits"
    assert main(["train-classifier", "digits", "--steps", "3", "--out", str(out)]) == 0
    return out


def _eval(npz: Path, clf: Path, *more: str) -> int:
    args = ["eval", str(npz), "--reference", "digits", "--classifier", str(clf)]
    return main([*args, "--cache-dir", str(npz.parent / "cache"), *more])


def test_kid_of_two_whole_sets_has_no_spread_and_may_be_negative():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((12, 4)), rng.standard_normal((12, 4))
    exact = mmd2_unbiased(x, y)
    assert exact < 0  # same distribution: the unbiased estimate scatters around 0
    whole = kernel_inception_distance(x, y, num_subsets=50, subset_size=100)
    assert whole.mean == pytest.approx(exact, rel=1e-12) and whole.std is None
    part = kernel_inception_distance(x, y, num_subsets=50, subset_size=6)
    assert part.std is not None and part.std > 0


def test_fid_of_few_samples_warns_how_many_it_needs(tmp_path, clf, capsys):
    train = load_dataset("digits", split="train")
    save_samples_npz(tmp_path / "few.npz", train.images[:5])
    with pytest.warns(UserWarning, match=r"FID of 5 samples: an estimate needs at least 1000 "):
        assert _eval(tmp_path / "few.npz", clf) == 0
    result = json.loads((tmp_path / "few-eval.json").read_text())
    assert result["fid_min_samples"] == max(1000, 2 * result["num_features"])
    save_samples_npz(tmp_path / "many.npz", train.images[:1000])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert _eval(tmp_path / "many.npz", clf) == 0


def test_kid_of_the_whole_reference_against_itself_prints_no_std(tmp_path, clf, capsys):
    test = load_dataset("digits", split="test")
    save_samples_npz(tmp_path / "ref.npz", test.images)
    assert _eval(tmp_path / "ref.npz", clf, "--metric", "kid") == 0
    result = json.loads((tmp_path / "ref-eval.json").read_text())
    assert result["kid_std"] is None and result["kid_subset_size"] == len(test.images)
    assert "(std unavailable: one subset, subsets of 297)" in capsys.readouterr().out


def test_samples_of_another_size_than_the_reference_warn(tmp_path, capsys):
    save_samples_npz(tmp_path / "big.npz", torch.zeros(4, 1, 16, 16, dtype=torch.uint8))
    args = ["eval", str(tmp_path / "big.npz"), "--reference", "digits", "--classifier-steps"]
    args += ["1", "--cache-dir", str(tmp_path / "cache")]
    with pytest.warns(UserWarning, match="samples are 16x16 but digits images are 8x8"):
        assert main(args) == 0


def test_a_second_evaluation_gets_its_own_file(tmp_path, clf):
    save_samples_npz(tmp_path / "s.npz", torch.zeros(4, 1, 8, 8, dtype=torch.uint8))
    assert _eval(tmp_path / "s.npz", clf, "--metric", "fid") == 0
    first = (tmp_path / "s-eval.json").read_text()
    assert _eval(tmp_path / "s.npz", clf, "--metric", "kid") == 0
    assert (tmp_path / "s-eval.json").read_text() == first
    assert json.loads((tmp_path / "s-eval-2.json").read_text())["metrics"] == ["kid"]
