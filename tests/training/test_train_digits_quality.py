"""The default recipe's promise: `difflab train` gives class-conditional EMA samples that an
independent classifier trained on real digits recognises as the requested digit >= 90% of
the time at the recipe's guidance. Slow (the whole recipe, a few minutes on a CPU)."""

import numpy as np
import pytest
from sklearn.svm import SVC

from difflab.cli.main import main
from difflab.data import load_dataset
from difflab.runs.load import load_run
from difflab.sampling.generation import generate


def digit_classifier() -> SVC:
    """An RBF SVM on the 8x8 digits train split (about 98% on the test split)."""
    train = load_dataset("digits", split="train")
    x = train.images.float().flatten(1).numpy() / 255  # [N, 64]
    return SVC(gamma="scale", C=10).fit(x, train.labels.numpy())


def conditional_accuracy(run_dir, *, per_class: int = 20, seed: int = 1000) -> float:
    """Fraction of EMA samples (recipe guidance) the classifier labels as requested."""
    run = load_run(run_dir, weights="ema")
    images, labels = generate(run, num=per_class * run.num_classes, seed=seed, batch_size=200)
    predicted = digit_classifier().predict(images.float().flatten(1).numpy() / 255)
    return float(np.mean(predicted == labels.numpy()))


@pytest.mark.slow
def test_digits_recipe_samples_are_recognised(tmp_path):
    assert main(["train", f"run.root={tmp_path}", "train.progress=false"]) == 0
    test = load_dataset("digits", split="test")
    clf = digit_classifier()
    assert clf.score(test.images.float().flatten(1).numpy() / 255, test.labels.numpy()) > 0.95
    assert conditional_accuracy(tmp_path / "digits") >= 0.9
