"""AdamW with every hyperparameter from the config; the learning rate is set per step."""

from __future__ import annotations

import torch
from torch import nn

from difflab.config.schema import TrainConfig
from difflab.training.lr_schedule import lr_factor


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
    """Set the learning rate of `step` on every parameter group; return it."""
    lr = train.lr * lr_factor(train.lr_schedule, step, train.steps, train.warmup_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr
