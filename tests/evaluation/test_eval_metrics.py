"""evaluate(): FID, KID and accuracy together, and its input checks."""

import pytest
import torch

from difflab.core.errors import ConfigError, DataError
from difflab.evaluation import ClassifierFeatures, EvalOptions, evaluate


def test_evaluate_real_digits_against_the_training_set(tmp_path, digits_split, digits_classifier):
    train, test = digits_split
    extractor = ClassifierFeatures(digits_classifier)
    options = EvalOptions(kid_subsets=10, kid_subset_size=100)
    result = evaluate(
        test.images,
        test.labels,
        reference=train,
        metrics=["fid", "kid", "accuracy"],
        extractor=extractor,
        classifier=digits_classifier,
        cache_dir=tmp_path,
        options=options,
    )
    assert result["num_samples"] == len(test.images)
    assert result["features"] == "difflab-digits" and result["reference"] == "digits/train"
    assert result["accuracy"] >= 0.95
    noise = torch.randint(0, 256, test.images.shape, dtype=torch.uint8)
    worse = evaluate(noise, None, reference=train, metrics=["fid", "kid"], extractor=extractor,
                     cache_dir=tmp_path, options=options)  # fmt: skip
    assert worse["fid"] > 10 * result["fid"] > 0
    assert worse["kid_mean"] > 10 * abs(result["kid_mean"])
    assert result["kid_std"] > 0 and "accuracy" not in worse


def test_fid_does_not_depend_on_batch_size(digits_split, digits_classifier):
    train, test = digits_split
    extractor = ClassifierFeatures(digits_classifier)
    fids = [
        evaluate(
            test.images,
            None,
            reference=train,
            metrics=["fid"],
            extractor=extractor,
            options=EvalOptions(batch_size=b),
        )["fid"]  # fmt: skip
        for b in (7, 50)
    ]
    # Statistics merge exactly (test_eval_frechet); float32 convolutions may round a batch of 7
    # differently from one of 50, which moves FID by ~1e-9 relative here.
    assert fids[0] == pytest.approx(fids[1], rel=1e-6)


def test_evaluate_rejects_bad_requests(digits_split, digits_classifier):
    train, test = digits_split
    images = test.images[:10]
    with pytest.raises(ConfigError, match="metrics"):
        evaluate(images, None, reference=train, metrics=["is"], extractor=None)
    with pytest.raises(ConfigError, match="extractor"):
        evaluate(images, None, reference=train, metrics=["fid"])
    with pytest.raises(ConfigError, match="labels"):
        evaluate(images, None, reference=None, metrics=["accuracy"], classifier=digits_classifier)
    with pytest.raises(DataError, match="labels of shape"):
        evaluate(images, test.labels, reference=None, metrics=["accuracy"],
                 classifier=digits_classifier)  # fmt: skip
    with pytest.raises(DataError, match="uint8"):
        evaluate(images.float(), None, reference=train, metrics=["fid"], extractor=lambda x: x)
