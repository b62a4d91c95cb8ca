"""The evaluation classifier: accuracy, reproducibility, time conditioning, save and load."""

import pytest
import torch

from difflab.core.errors import CheckpointError, ConfigError, DataError
from difflab.evaluation import (
    Classifier,
    ClassifierConfig,
    classifier_accuracy,
    load_classifier,
    predict,
    save_classifier,
    train_classifier,
    weights_fingerprint,
)
from difflab.evaluation.classifier_training import cosine_lr, random_shift
from difflab.schedules import make_schedule


def test_digits_classifier_is_accurate_on_held_out_digits(digits_split, digits_classifier):
    _, test = digits_split
    accuracy = classifier_accuracy(digits_classifier, test.images, test.labels)
    assert accuracy >= 0.95
    wrong = (test.labels + 1) % 10
    assert classifier_accuracy(digits_classifier, test.images, wrong) <= 0.05


def test_training_is_reproducible_with_a_seed(digits_split):
    train, _ = digits_split
    a = train_classifier(train, steps=5, batch_size=16, seed=3, width=8)
    b = train_classifier(train, steps=5, batch_size=16, seed=3, width=8)
    c = train_classifier(train, steps=5, batch_size=16, seed=4, width=8)
    assert weights_fingerprint(a) == weights_fingerprint(b) != weights_fingerprint(c)


@pytest.mark.parametrize("shape", [(2, 1, 8, 8), (2, 1, 28, 28), (2, 3, 32, 32), (2, 4, 5, 5)])
def test_any_size_and_channel_count(shape):
    config = ClassifierConfig("toy", shape[1], shape[2], num_classes=3, width=8)
    x = torch.randn(shape)
    classifier = Classifier(config)
    assert classifier.features(x).shape == (2, config.feature_dim)
    assert classifier.logits(x).shape == (2, 3)


def test_noisy_classifier_uses_time_and_trains(digits_split):
    config = ClassifierConfig("digits", 1, 8, num_classes=10, width=8, noisy=True)
    classifier = Classifier(config)
    x = torch.randn(3, 1, 8, 8)
    early, late = (
        classifier.logits(x, torch.zeros(3)),
        classifier.logits(x, torch.full((3,), 900.0)),
    )
    assert not torch.allclose(early, late)
    with pytest.raises(ConfigError, match="t_net"):
        classifier.logits(x)
    with pytest.raises(ConfigError, match="not time-conditioned"):
        Classifier(ClassifierConfig("digits", 1, 8, 10, width=8)).logits(x, torch.zeros(3))
    with pytest.raises(ConfigError, match="schedule"):
        train_classifier(digits_split[0], steps=1, noisy=True)
    schedule = make_schedule("linear", num_steps=1000)
    trained = train_classifier(
        digits_split[0], steps=3, batch_size=8, width=8, noisy=True, schedule=schedule
    )
    assert trained.config.noisy and not trained.training


def test_random_shift_translates_by_whole_pixels():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    generator = torch.Generator().manual_seed(0)
    shifted = random_shift(x, 2, generator)
    assert shifted.shape == x.shape
    for i in range(2):
        # Each output row is an input row (edges replicated): same multiset of row offsets.
        inner = shifted[i, 0, 2:4, 2:4]
        hits = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(inner, x[i, 0, 2 + dy : 4 + dy, 2 + dx : 4 + dx])
        ]
        assert len(hits) == 1


def test_cosine_lr_warms_up_and_decays_to_zero():
    assert cosine_lr(0, 100, 1.0, warmup=10) == pytest.approx(0.1)
    assert cosine_lr(9, 100, 1.0, warmup=10) == pytest.approx(1.0)
    assert cosine_lr(10, 100, 1.0, warmup=10) == pytest.approx(1.0)
    assert cosine_lr(100, 100, 1.0, warmup=10) == pytest.approx(0.0)


def test_save_and_load_round_trip(tmp_path, digits_split, digits_classifier):
    save_classifier(digits_classifier, tmp_path / "clf")
    loaded = load_classifier(tmp_path / "clf")
    assert loaded.config == digits_classifier.config
    assert weights_fingerprint(loaded) == weights_fingerprint(digits_classifier)
    images = digits_split[1].images[:20]
    assert torch.equal(predict(loaded, images), predict(digits_classifier, images))


def test_load_errors_name_the_file(tmp_path, digits_classifier):
    folder = tmp_path / "clf"
    with pytest.raises(CheckpointError, match="classifier.json"):
        load_classifier(folder)
    save_classifier(digits_classifier, folder)
    (folder / "classifier.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(CheckpointError, match="classifier.safetensors"):
        load_classifier(folder)
    (folder / "classifier.safetensors").unlink()
    with pytest.raises(CheckpointError, match="classifier.safetensors"):
        load_classifier(folder)
    (folder / "classifier.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="classifier.json"):
        load_classifier(folder)


def test_wrong_image_shape_is_a_data_error(digits_classifier):
    with pytest.raises(DataError, match="digits"):
        predict(digits_classifier, torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(DataError, match="uint8"):
        predict(digits_classifier, torch.zeros(2, 1, 8, 8))


def test_bad_training_requests_are_config_errors(digits_split):
    with pytest.raises(ConfigError, match="steps"):
        train_classifier(digits_split[0], steps=0)
    with pytest.raises(ConfigError, match="multiple of 8"):
        ClassifierConfig("digits", 1, 8, 10, width=12)
