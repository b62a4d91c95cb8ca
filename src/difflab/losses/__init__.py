"""The denoising loss and its weightings."""

from difflab.losses.denoising import DenoisingLoss
from difflab.losses.weighting import WEIGHTINGS, loss_weight, target_space_factor

__all__ = ["WEIGHTINGS", "DenoisingLoss", "loss_weight", "target_space_factor"]
