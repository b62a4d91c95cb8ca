"""KID: the unbiased MMD^2 with the cubic kernel, against a brute-force sum."""

import itertools

import numpy as np
import pytest

from difflab.core.errors import ConfigError, DataError
from difflab.evaluation import kernel_inception_distance, mmd2_unbiased


def _mmd2_brute_force(x: np.ndarray, y: np.ndarray) -> float:
    """Binkowski et al. 2018, eq. 4, summed term by term."""
    m, d = x.shape

    def k(a, b):
        return (a @ b / d + 1.0) ** 3

    pairs = [(i, j) for i, j in itertools.product(range(m), repeat=2) if i != j]
    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i, j in pairs) / (m * (m - 1))
    across = sum(k(x[i], y[j]) for i, j in itertools.product(range(m), repeat=2))
    return within - 2.0 * across / m**2


def test_mmd2_unbiased_matches_the_brute_force_sum():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((7, 4)), rng.standard_normal((7, 4)) + 0.5
    assert mmd2_unbiased(x, y) == pytest.approx(_mmd2_brute_force(x, y), rel=1e-12)


def test_kid_with_one_full_subset_is_the_mmd_of_the_sets():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((20, 3)), rng.standard_normal((20, 3))
    kid = kernel_inception_distance(x, y, num_subsets=1, subset_size=20)
    assert kid.mean == pytest.approx(mmd2_unbiased(x, y), rel=1e-12)  # order does not matter
    assert kid.std is None and kid.subset_size == 20  # one subset: no spread to report


def test_kid_of_identical_sets_is_near_zero_and_shifted_sets_clearly_positive():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((400, 16))
    same = kernel_inception_distance(x, x.copy(), num_subsets=20, subset_size=100)
    shifted = kernel_inception_distance(x, x + 1.0, num_subsets=20, subset_size=100)
    assert same.std > 0  # subsets differ, so the estimate varies
    assert abs(same.mean) < 3 * same.std + 1e-3
    assert shifted.mean > 10 * (abs(same.mean) + same.std)
    assert shifted.mean > 5 * shifted.std


def test_kid_is_reproducible_with_a_seed():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((50, 8)), rng.standard_normal((60, 8))
    a = kernel_inception_distance(x, y, num_subsets=5, subset_size=30, seed=7)
    b = kernel_inception_distance(x, y, num_subsets=5, subset_size=30, seed=7)
    c = kernel_inception_distance(x, y, num_subsets=5, subset_size=30, seed=8)
    assert a == b and a != c


def test_kid_errors():
    x = np.zeros((10, 3))
    with pytest.raises(DataError, match="features"):
        kernel_inception_distance(x, np.zeros((10, 4)))
    with pytest.raises(ConfigError, match="num_subsets"):
        kernel_inception_distance(x, x, num_subsets=0)
