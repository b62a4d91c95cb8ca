"""What a network predicts (eps, x0 or v): its training target and its conversion to (x0, eps)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import Tensor

from difflab.core.errors import ConfigError
from difflab.parameterization.conversions import (
    eps_from_v,
    eps_from_x0,
    v_from_x0_eps,
    x0_from_eps,
    x0_from_v,
)

Parameterization = Literal["eps", "x0", "v"]
PARAMETERIZATIONS: tuple[str, ...] = ("eps", "x0", "v")


@dataclass(frozen=True)
class Prediction:
    """A denoiser's estimate of the clean data and of the noise at x_t."""

    x0: Tensor
    eps: Tensor


# A denoiser with its condition bound: (x_t [N, ...], t scalar or [N]) -> Prediction.
DenoiseFn = Callable[[Tensor, Tensor], Prediction]


def check_parameterization(kind: str) -> None:
    if kind not in PARAMETERIZATIONS:
        raise ConfigError(
            f"unknown parameterization {kind!r}; expected one of {', '.join(PARAMETERIZATIONS)}"
        )


def prediction_from_output(
    kind: Parameterization, output: Tensor, *, x_t: Tensor, alpha: Tensor, sigma: Tensor
) -> Prediction:
    """Turn a network output of the given kind into (x0, eps)."""
    if kind == "eps":
        x0 = x0_from_eps(x_t=x_t, eps=output, alpha=alpha, sigma=sigma)
        return Prediction(x0=x0, eps=output)
    if kind == "x0":
        return Prediction(x0=output, eps=eps_from_x0(x_t=x_t, x0=output, alpha=alpha, sigma=sigma))
    if kind == "v":
        return Prediction(
            x0=x0_from_v(x_t=x_t, v=output, alpha=alpha, sigma=sigma),
            eps=eps_from_v(x_t=x_t, v=output, alpha=alpha, sigma=sigma),
        )
    check_parameterization(kind)
    raise AssertionError("unreachable")


def training_target(
    kind: Parameterization, *, x0: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor
) -> Tensor:
    """What the network is trained to output: eps, x0 or v = alpha eps - sigma x0."""
    if kind == "eps":
        return eps
    if kind == "x0":
        return x0
    if kind == "v":
        return v_from_x0_eps(x0=x0, eps=eps, alpha=alpha, sigma=sigma)
    check_parameterization(kind)
    raise AssertionError("unreachable")
