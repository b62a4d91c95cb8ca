"""AdamW with every hyperparameter from the config; the learning rate (and a cycled beta1) is
set per step."""

from __future__ import annotations

import torch
from torch import nn

from difflab.config.schema import TrainConfig
from difflab.training.lr_schedule import beta1_at, lr_factor


def build_optimizer(
    model: nn.Module, train: TrainConfig, device: torch.device
) -> torch.optim.AdamW:
    """AdamW (Loshchilov & Hutter 2019); the fused kernel on CUDA."""
    return torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=train.lr,
        betas=train.betas,
        eps=train.adam_eps,
        weight_decay=train.weight_decay,
        fused=device.type == "cuda",
    )


def set_lr(optimizer: torch.optim.Optimizer, train: TrainConfig, step: int) -> float:
    """Set the learning rate of `step` (and beta1, for a schedule that cycles it) on every
    parameter group; return the learning rate."""
    args = (train.lr_schedule, step, train.steps, train.warmup_steps)
    lr, beta1 = train.lr * lr_factor(*args), beta1_at(*args)
    for group in optimizer.param_groups:
        group["lr"] = lr
        if beta1 is not None:
            group["betas"] = (beta1, *group["betas"][1:])
    return lr
