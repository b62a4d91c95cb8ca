"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs", eq. 4 and 5).

KID is the unbiased estimate of the squared maximum mean discrepancy with the cubic
polynomial kernel k(x, y) = (x . y / d + 1)^3, averaged over random subsets of equal size m:

    MMD^2_u = 1/(m(m-1)) sum_{i != j} [k(x_i, x_j) + k(y_i, y_j)] - 2/m^2 sum_{i, j} k(x_i, y_j)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor

from difflab.core.errors import ConfigError, DataError
from difflab.evaluation.frechet import as_float64


@dataclass(frozen=True)
class KIDResult:
    """Mean and standard deviation of MMD^2_u over num_subsets subsets of subset_size. std is
    None when every subset would be the same (both whole sets, or one subset): no spread to
    report. The mean may be negative: MMD^2_u is unbiased, so it scatters around 0 for sets
    drawn from one distribution."""

    mean: float
    std: float | None
    num_subsets: int
    subset_size: int


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x . y / d + 1)^3 for rows x [N, D], y [M, D] -> [N, M]."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between equally many samples x [m, D] and y [m, D] (eq. 4)."""
    m = x.shape[0]
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    features_x: Tensor | np.ndarray,
    features_y: Tensor | np.ndarray,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> KIDResult:
    """KID between feature sets [N, D] and [M, D], in float64.

    Each subset draws min(subset_size, N, M) rows without replacement from each set, with a
    numpy generator seeded by seed, so the result is reproducible. When that is all of N and
    M, MMD^2_u does not depend on the order, so it is computed once and std is None.
    """
    x, y = as_float64(features_x), as_float64(features_y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise DataError(f"KID needs features [N, D] and [M, D]; got {x.shape} and {y.shape}")
    if num_subsets < 1 or subset_size < 2:
        raise ConfigError(
            f"KID needs num_subsets >= 1 and subset_size >= 2; got {num_subsets}, {subset_size}"
        )
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise DataError(f"KID needs at least 2 samples in each set; got {len(x)} and {len(y)}")
    if m == len(x) == len(y):
        return KIDResult(mmd2_unbiased(x, y), None, 1, m)
    rng = np.random.default_rng(seed)
    values = np.array(
        [
            mmd2_unbiased(
                x[rng.choice(len(x), m, replace=False)], y[rng.choice(len(y), m, replace=False)]
            )
            for _ in range(num_subsets)
        ]
    )
    std = float(values.std()) if num_subsets > 1 else None
    return KIDResult(float(values.mean()), std, num_subsets, m)
