"""Feature statistics and the Frechet distance between two Gaussians (FID).

FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule", eq. 6):

    d^2 = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr( (S1 S2)^(1/2) )

Statistics are accumulated in float64 with Chan et al.'s pairwise update (1979), so the
result does not depend on how the features were split into batches beyond float64 rounding
(lucidrains/denoising-diffusion-pytorch #224 shipped an FID that did).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from difflab.core.errors import DataError


@dataclass(frozen=True)
class FeatureStatistics:
    """Mean [D] and covariance [D, D] (float64) of num_samples feature vectors."""

    mu: np.ndarray
    sigma: np.ndarray
    num_samples: int


class RunningStatistics:
    """Mean and covariance of feature batches, merged one batch at a time in float64.

    Chan, Golub & LeVeque (1979) pairwise update: for a batch B with mean m_B and
    scatter M2_B, mean += (m_B - mean) * n_B / n and
    M2 += M2_B + outer(delta, delta) * n_A * n_B / n.
    """

    def __init__(self) -> None:
        self.count = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None

    def update(self, features: Tensor | np.ndarray) -> None:
        x = as_float64(features)  # [B, D]
        if x.ndim != 2:
            raise DataError(f"features must have shape [N, D], got {x.shape}")
        n_b = x.shape[0]
        if n_b == 0:
            return
        mean_b = x.mean(axis=0)
        centred = x - mean_b
        m2_b = centred.T @ centred  # [D, D]
        if self._mean is None or self._m2 is None:
            self.count, self._mean, self._m2 = n_b, mean_b, m2_b
            return
        if mean_b.shape != self._mean.shape:
            raise DataError(f"feature batch has dim {mean_b.shape[0]}, expected {len(self._mean)}")
        n_a, n = self.count, self.count + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / n)
        self._m2 = self._m2 + m2_b + np.outer(delta, delta) * (n_a * n_b / n)
        self.count = n

    def result(self) -> FeatureStatistics:
        """Mean and unbiased covariance (divided by N - 1, as numpy.cov)."""
        if self._mean is None or self._m2 is None or self.count < 2:
            raise DataError(f"feature statistics need at least 2 samples, got {self.count}")
        return FeatureStatistics(self._mean.copy(), self._m2 / (self.count - 1), self.count)


def fid_min_samples(num_features: int) -> int:
    """The fewest samples an FID of num_features features should come from: max(2 D, 1000).

    Below D + 1 samples the covariance is singular, and FID's bias falls only as 1/N (Chong &
    Forsyth 2020), so an FID of fewer samples is dominated by how many there were.
    """
    return max(2 * num_features, 1000)


def feature_statistics(features: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu [D], sigma [D, D]) of features [N, D] in float64; sigma is numpy.cov(rowvar=False)."""
    stats = RunningStatistics()
    stats.update(features)
    result = stats.result()
    return result.mu, result.sigma


def frechet_distance(
    mu1: np.ndarray | Tensor,
    sigma1: np.ndarray | Tensor,
    mu2: np.ndarray | Tensor,
    sigma2: np.ndarray | Tensor,
) -> float:
    """Squared Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    tr((S1 S2)^(1/2)) = tr((A S2 A)^(1/2)) with A = S1^(1/2), because S1 S2 is similar to the
    symmetric positive semi-definite A S2 A. Both square roots come from symmetric
    eigen-decompositions with eigenvalues clipped at 0, so singular or rank-deficient
    covariances (fewer samples than feature dims) need no eps offset, unlike scipy's sqrtm
    route used by pytorch-fid, and the result has no imaginary part to discard.
    """
    mu1, mu2 = as_float64(mu1), as_float64(mu2)
    sigma1, sigma2 = as_float64(sigma1), as_float64(sigma2)
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise DataError(
            f"Frechet distance needs mu [D] and sigma [D, D] of one D; got mu1 {mu1.shape}, "
            f"sigma1 {sigma1.shape}, mu2 {mu2.shape}, sigma2 {sigma2.shape}"
        )
    sqrt_sigma1 = _psd_sqrt(sigma1)
    eigvals = np.linalg.eigvalsh(_symmetric(sqrt_sigma1 @ sigma2 @ sqrt_sigma1))
    tr_covmean = np.sqrt(np.clip(eigvals, 0.0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root V diag(sqrt(max(w, 0))) V^T of a symmetric PSD matrix."""
    w, v = np.linalg.eigh(_symmetric(matrix))
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _symmetric(matrix: np.ndarray) -> np.ndarray:
    return (matrix + matrix.T) / 2.0


def as_float64(x: Tensor | np.ndarray) -> np.ndarray:
    """A float64 numpy copy of a tensor or array."""
    if isinstance(x, Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)
