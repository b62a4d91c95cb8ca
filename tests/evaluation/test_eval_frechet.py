"""Frechet distance and feature statistics against scipy's sqrtm and exact answers."""

import numpy as np
import pytest
import torch
from scipy import linalg

from difflab.core.errors import DataError
from difflab.evaluation import RunningStatistics, feature_statistics, frechet_distance


def _random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def _fid_sqrtm(mu1, sigma1, mu2, sigma2) -> float:
    """The pytorch-fid formula with scipy's sqrtm, the reference the field uses."""
    covmean = linalg.sqrtm(sigma1 @ sigma2).real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("d", [1, 5, 64])
def test_frechet_distance_matches_scipy_sqrtm(d):
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    sigma1, sigma2 = _random_spd(rng, d), _random_spd(rng, d)
    expected = _fid_sqrtm(mu1, sigma1, mu2, sigma2)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_of_commuting_gaussians_is_exact():
    # Diagonal covariances: d^2 = |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2.
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 2.0])
    expected = 9.0 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 0) ** 2
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected)


def test_frechet_distance_accepts_tensors():
    mu, sigma = torch.ones(3, dtype=torch.float32), torch.eye(3)
    assert frechet_distance(mu, sigma, mu * 0, sigma) == pytest.approx(3.0)


def test_fid_of_a_set_against_itself_is_zero():
    features = np.random.default_rng(0).standard_normal((500, 32)) * 3 + 1
    mu, sigma = feature_statistics(features)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6 * np.trace(sigma)


def test_rank_deficient_covariances_give_the_exact_finite_value():
    # 10 samples in 64 dims: rank <= 9. Shifting every sample by c keeps sigma and adds |c|^2.
    rng = np.random.default_rng(1)
    features = rng.standard_normal((10, 64))
    shift = rng.standard_normal(64)
    mu1, sigma1 = feature_statistics(features)
    mu2, sigma2 = feature_statistics(features + shift)
    assert np.linalg.matrix_rank(sigma1) == 9
    fid = frechet_distance(mu1, sigma1, mu2, sigma2)
    assert np.isfinite(fid)
    assert fid == pytest.approx(shift @ shift, rel=1e-6)


def test_rank_deficient_against_full_rank_matches_scipy():
    rng = np.random.default_rng(2)
    low = rng.standard_normal((64, 3))
    sigma1 = low @ low.T  # rank 3
    sigma2 = _random_spd(rng, 64)
    mu = np.zeros(64)
    # sqrtm of a singular product is ill-conditioned; compare on the symmetric form instead.
    root = linalg.sqrtm(sigma1).real
    expected = (
        np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(linalg.sqrtm(root @ sigma2 @ root).real)
    )
    assert frechet_distance(mu, sigma1, mu, sigma2) == pytest.approx(expected, rel=1e-6)


def test_feature_statistics_equal_numpy_and_do_not_depend_on_batch_size():
    features = np.random.default_rng(3).standard_normal((203, 16)) * 5 + 100
    mu, sigma = feature_statistics(features)
    np.testing.assert_allclose(mu, features.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(features, rowvar=False), rtol=1e-10)
    for batch in (1, 7, 50):
        running = RunningStatistics()
        for start in range(0, len(features), batch):
            running.update(torch.from_numpy(features[start : start + batch]))
        result = running.result()
        assert result.num_samples == 203
        np.testing.assert_allclose(result.mu, mu, rtol=1e-12)
        np.testing.assert_allclose(result.sigma, sigma, rtol=1e-10, atol=1e-10)


def test_shape_errors_are_data_errors():
    with pytest.raises(DataError, match="mu1"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(DataError, match="at least 2"):
        feature_statistics(np.zeros((1, 3)))
    with pytest.raises(DataError, match="dim 4"):
        running = RunningStatistics()
        running.update(np.zeros((2, 3)))
        running.update(np.zeros((2, 4)))
