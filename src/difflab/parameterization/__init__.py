"""eps / x0 / v conversions and the Denoiser wrapper."""

from difflab.parameterization.denoiser import Denoiser, alpha_sigma, broadcast_time
from difflab.parameterization.prediction import (
    PARAMETERIZATIONS,
    Parameterization,
    Prediction,
    prediction_from_output,
    training_target,
)

__all__ = [
    "PARAMETERIZATIONS",
    "Denoiser",
    "Parameterization",
    "Prediction",
    "broadcast_time",
    "alpha_sigma",
    "prediction_from_output",
    "training_target",
]
