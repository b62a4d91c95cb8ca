"""generate_sharded of an unconditional model guided by a noisy classifier: the ranks' parts
(two ranks emulated in this process) put together are generate's images and labels."""

from dataclasses import replace

import pytest
import torch
from dist_runs import train_one_process

from difflab.evaluation import Classifier, ClassifierConfig, save_classifier
from difflab.parallel import distributed
from difflab.runs.load import load_run
from difflab.sampling import sharded as sharded_generation
from difflab.sampling.generation import generate

QUIET = ["train.steps=1", "train.sample_every=0", "train.val_every=0"]


@pytest.fixture(scope="module")
def guided(tmp_path_factory):
    """(an unconditional run, its sample section with a noisy classifier at scale 500)."""
    root = tmp_path_factory.mktemp("guided")
    run = load_run(train_one_process(root, [*QUIET, "model.class_conditional=false"]))
    config = ClassifierConfig("digits", in_channels=1, image_size=8, num_classes=10, noisy=True)
    torch.manual_seed(0)
    save_classifier(Classifier(config), root / "clf")
    sample = replace(run.config.sample, classifier=str(root / "clf"), classifier_scale=500.0)
    return run, sample


def _two_ranks(monkeypatch, run, **options):
    """generate_sharded on rank 1 then rank 0 of 2; rank 0 gathers rank 1's part after its own."""
    parts = []

    def gather(x, num):
        parts.append(x)
        return torch.cat(parts[::-1])[:num] if len(parts) == 2 else None

    monkeypatch.setattr(sharded_generation, "gather_rows", gather)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    results = []
    for r in (1, 0):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        results.append(sharded_generation.generate_sharded(run, **options))
    assert results[0] is None and parts[1].shape[0] == 3  # 5 images: 3 a rank, 1 padding
    return results[1]


@pytest.mark.parametrize("labels", [None, [3, 7]])
def test_sharded_guided_unconditional_samples_are_generates(guided, monkeypatch, labels):
    run, sample = guided
    options = dict(num=5, labels=labels, sample=sample, seed=4)
    images, y = generate(run, **options)
    assert y.tolist() == ([0, 1, 2, 3, 4] if labels is None else [3, 7, 3, 7, 3])
    sharded_images, sharded_y = _two_ranks(monkeypatch, run, **options)
    assert torch.equal(sharded_y, y)
    assert torch.equal(sharded_images, images)
    other, _ = generate(run, **{**options, "labels": [9]})
    assert not torch.equal(other[3:], images[3:])  # rank 1's images depend on their labels
