"""Post-hoc EMA (Karras et al. 2024, EDM2 Sec. 3): the average of a profile chosen after
training, as a linear combination of stored power-function EMA snapshots.

After s averaged steps the power-function EMA (decay (1 - 1/n)^(g+1), `ema.EMA`) weights step n
(1-based) by the telescoped product
    w_s(n) = (n^(g+1) - (n-1)^(g+1)) / s^(g+1),   1 <= n <= s,
whose relative width is sigma_rel(g) = sqrt((g+1) / ((g+2)^2 (g+3))) (EDM2 Eq. 3). The
coefficients x minimise ||sum_i x_i w_i - w_target||^2 over the steps (least squares on the
exact discrete profiles), so sum_i x_i snapshot_i is the EMA of the closest profile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

CHUNK = 1 << 16  # steps per block of the Gram matrix: bounds memory for long runs


def sigma_rel_from_gamma(gamma: float) -> float:
    """sigma_rel = sqrt((g + 1) / ((g + 2)^2 (g + 3))) (EDM2 Eq. 3)."""
    return float(np.sqrt((gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3))))


def gamma_from_sigma_rel(sigma_rel: float) -> float:
    """The g with sigma_rel(g) = sigma_rel: the largest real root of
    g^3 + 7 g^2 + (16 - s^-2) g + (12 - s^-2) (EDM2 Algorithm 2)."""
    if not 0 < sigma_rel < 0.3:  # sigma_rel(g) peaks at 0.3003 (g = -0.38)
        raise ValueError(f"sigma_rel must be in (0, 0.3), got {sigma_rel}")
    t = sigma_rel**-2
    roots = np.roots([1.0, 7.0, 16.0 - t, 12.0 - t])
    return float(roots.real[np.abs(roots.imag) < 1e-9].max())


def power_profile(gamma: float, steps: int, n: np.ndarray) -> np.ndarray:
    """w_steps(n) for the 1-based steps n (float64), zero past `steps`."""
    n = n.astype(np.float64)
    w = (n ** (gamma + 1) - (n - 1) ** (gamma + 1)) / float(steps) ** (gamma + 1)
    return np.where(n <= steps, w, 0.0)


def posthoc_coefficients(
    snapshots: Sequence[tuple[int, float]], target: tuple[int, float]
) -> np.ndarray:
    """x [K] for snapshots (steps_i, gamma_i) so that sum_i x_i w_i is the least-squares fit of
    w_target (steps, gamma); steps count averaged optimizer steps (1-based)."""
    if not snapshots:
        raise ValueError("post-hoc EMA needs at least one snapshot")
    length = max(s for s, _ in [*snapshots, target])
    k = len(snapshots)
    gram, rhs = np.zeros((k, k)), np.zeros(k)
    for lo in range(1, length + 1, CHUNK):
        n = np.arange(lo, min(lo + CHUNK, length + 1))
        a = np.stack([power_profile(g, s, n) for s, g in snapshots], axis=1)  # [B, K]
        gram += a.T @ a
        rhs += a.T @ power_profile(target[1], target[0], n)
    return np.linalg.lstsq(gram, rhs, rcond=None)[0]


def combine(states: Sequence[Mapping[str, Tensor]], coefficients: Sequence[float]) -> dict:
    """sum_i x_i states_i, tensor by tensor, accumulated in float64 and cast back; integer
    tensors (counters) are taken from the last state."""
    out = {}
    for key, last in states[-1].items():
        if not last.is_floating_point():
            out[key] = last.clone()
            continue
        total = torch.zeros(last.shape, dtype=torch.float64)
        for x, state in zip(coefficients, states, strict=True):
            total += float(x) * state[key].to(torch.float64)
        out[key] = total.to(last.dtype)
    return out
