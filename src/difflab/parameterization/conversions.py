"""Conversions between the quantities a denoiser can predict, at fixed x_t = alpha x0 + sigma eps.

Pure, keyword-only functions whose docstring is the formula (Salimans & Ho 2022, sec. 4 and
appendix D). alpha and sigma broadcast against x_t.
"""

from __future__ import annotations

from torch import Tensor


def x0_from_eps(*, x_t: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """x0 = (x_t - sigma * eps) / alpha."""
    return (x_t - sigma * eps) / alpha


def eps_from_x0(*, x_t: Tensor, x0: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """eps = (x_t - alpha * x0) / sigma."""
    return (x_t - alpha * x0) / sigma


def v_from_x0_eps(*, x0: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """v = alpha * eps - sigma * x0."""
    return alpha * eps - sigma * x0


def x0_from_v(*, x_t: Tensor, v: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """x0 = alpha * x_t - sigma * v (variance preserving: alpha^2 + sigma^2 = 1)."""
    return alpha * x_t - sigma * v


def eps_from_v(*, x_t: Tensor, v: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """eps = sigma * x_t + alpha * v (variance preserving: alpha^2 + sigma^2 = 1)."""
    return sigma * x_t + alpha * v
