"""Reference statistics: computed once, cached on disk, keyed by data and extractor."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from difflab.evaluation import reference_key, reference_statistics


class _CountingExtractor:
    """Features = per-channel pixel means and squared means; counts the images it sees."""

    def __init__(self, name: str = "toy", fingerprint: str = "w0") -> None:
        self.name, self.fingerprint, self.seen = name, fingerprint, 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.seen += len(images)
        x = images.float().flatten(2)  # [N, C, H*W]
        return torch.cat([x.mean(2), (x**2).mean(2), x[:, :, :4].flatten(1)], dim=1)


def test_cache_hit_returns_identical_statistics_without_recomputing(tmp_path, digits):
    extractor = _CountingExtractor()
    first = reference_statistics(digits, extractor, cache_dir=tmp_path, batch_size=100)
    assert extractor.seen == len(digits.images)
    assert len(list(tmp_path.glob("digits-train-toy-*.npz"))) == 1
    second = reference_statistics(digits, extractor, cache_dir=tmp_path, batch_size=33)
    assert extractor.seen == len(digits.images)  # nothing recomputed
    assert second.key == first.key
    np.testing.assert_array_equal(second.stats.mu, first.stats.mu)
    np.testing.assert_array_equal(second.stats.sigma, first.stats.sigma)
    np.testing.assert_array_equal(second.features, first.features)
    assert second.stats.num_samples == len(digits.images)


def test_statistics_match_a_direct_computation(digits):
    extractor = _CountingExtractor()
    ref = reference_statistics(digits, extractor, batch_size=64)
    features = extractor(digits.images).double().numpy()
    np.testing.assert_allclose(ref.stats.mu, features.mean(0), rtol=1e-12)
    np.testing.assert_allclose(ref.stats.sigma, np.cov(features, rowvar=False), rtol=1e-9)


def test_key_changes_with_data_split_and_extractor(digits):
    extractor = _CountingExtractor()
    key = reference_key(digits, extractor)
    changed = digits.images.clone()
    changed[0, 0, 0, 0] ^= 1
    variants = [
        replace(digits, images=changed),
        replace(digits, images=digits.images[:-1], labels=digits.labels[:-1]),
        replace(digits, images=digits.images.flip(0)),
        replace(digits, split="test"),
    ]
    keys = {reference_key(v, extractor) for v in variants}
    keys |= {reference_key(digits, _CountingExtractor("toy", "w1"))}
    keys |= {reference_key(digits, _CountingExtractor("other", "w0"))}
    assert key not in keys and len(keys) == 6
    assert reference_key(digits, _CountingExtractor()) == key


def test_unreadable_cache_file_is_recomputed(tmp_path, digits):
    extractor = _CountingExtractor()
    ref = reference_statistics(digits, extractor, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npz")
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        again = reference_statistics(digits, extractor, cache_dir=tmp_path)
    assert extractor.seen == 2 * len(digits.images)
    np.testing.assert_array_equal(again.stats.mu, ref.stats.mu)
