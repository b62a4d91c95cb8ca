"""On real MNIST: FID separates held-out digits from noise with a briefly trained classifier."""

from dataclasses import replace

import torch

from difflab.data import load_dataset
from difflab.evaluation import ClassifierFeatures, EvalOptions, evaluate, train_classifier


def test_fid_of_test_digits_is_far_below_fid_of_noise(shared_data, tmp_path):
    train = load_dataset("mnist", root=shared_data / "mnist", split="train")
    test = load_dataset("mnist", root=shared_data / "mnist", split="test")
    train = replace(train, images=train.images[:3000], labels=train.labels[:3000])
    classifier = train_classifier(train, steps=150, batch_size=32, lr=3e-3, width=8, seed=0)
    reference = replace(train, images=train.images[:2000], labels=train.labels[:2000])
    extractor = ClassifierFeatures(classifier)
    options = EvalOptions(kid_subsets=10, kid_subset_size=500)

    def metrics(images, labels):
        return evaluate(images, labels, reference=reference, metrics=["fid", "kid", "accuracy"],
                        extractor=extractor, classifier=classifier, cache_dir=tmp_path,
                        options=options)  # fmt: skip

    real = metrics(test.images[:1000], test.labels[:1000])
    noise_images = torch.randint(0, 256, (1000, 1, 28, 28), dtype=torch.uint8,
                                 generator=torch.Generator().manual_seed(0))  # fmt: skip
    noise = metrics(noise_images, test.labels[:1000])
    assert noise["fid"] > 20 * real["fid"]
    assert noise["kid_mean"] > 20 * abs(real["kid_mean"])
    assert real["accuracy"] > 2 * noise["accuracy"]  # briefly trained: far from its best
    assert len(list(tmp_path.glob("mnist-train-difflab-mnist-*.npz"))) == 1  # cached once
