import math

import pytest
import torch
from torch.optim.lr_scheduler import OneCycleLR

from difflab.config.schema import TrainConfig
from difflab.training.lr_schedule import (
    beta1_at,
    constant,
    cosine,
    lr_factor,
    one_cycle,
    one_cycle_beta1,
)
from difflab.training.optim import set_lr


def test_constant_with_warmup():
    assert [constant(s, 100, 4) for s in (0, 1, 3, 4, 99)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    assert constant(0, 100, 0) == 1.0


def test_cosine_with_warmup_reaches_zero_at_the_last_step():
    total, warmup = 110, 10
    assert cosine(0, total, warmup) == pytest.approx(0.1)
    assert cosine(9, total, warmup) == pytest.approx(1.0)
    assert cosine(10, total, warmup) == pytest.approx(1.0)
    mid = 10 + (total - warmup - 1) / 2
    assert cosine(int(mid), total, warmup) == pytest.approx(
        0.5 * (1 + math.cos(math.pi * (int(mid) - 10) / 99))
    )
    assert cosine(total - 1, total, warmup) == pytest.approx(0.0, abs=1e-12)


def _torch_one_cycle(total, warmup, lr):
    """An AdamW driven by torch's OneCycleLR (defaults; pct_start from warmup as difflab)."""
    param = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    optimizer = torch.optim.AdamW([param], lr=lr, betas=(0.9, 0.999))
    pct = warmup / total if warmup > 0 else 0.3
    return param, optimizer, OneCycleLR(optimizer, max_lr=lr, total_steps=total, pct_start=pct)


@pytest.mark.parametrize(("total", "warmup"), [(100, 0), (37, 0), (50, 7), (10, 3), (3, 0)])
def test_one_cycle_is_torchs_one_cycle_lr_step_by_step(total, warmup):
    """lr and beta1 at every step, and the weights AdamW makes with them, equal those of
    torch.optim.lr_scheduler.OneCycleLR on the same optimizer and gradients."""
    train = TrainConfig(steps=total, lr=2e-3, lr_schedule="one-cycle", warmup_steps=warmup)
    ref_param, ref_opt, scheduler = _torch_one_cycle(total, warmup, train.lr)
    param = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    optimizer = torch.optim.AdamW([param], lr=train.lr, betas=train.betas)
    gen = torch.Generator().manual_seed(0)
    for step in range(total):
        lr = set_lr(optimizer, train, step)
        group, ref = optimizer.param_groups[0], ref_opt.param_groups[0]
        assert lr == pytest.approx(ref["lr"], rel=1e-12), step
        assert group["betas"] == pytest.approx(ref["betas"], rel=1e-12), step
        grad = torch.randn(3, generator=gen, dtype=torch.float64)
        param.grad, ref_param.grad = grad.clone(), grad.clone()
        optimizer.step()
        ref_opt.step()
        if step < total - 1:  # OneCycleLR refuses to step past total_steps
            scheduler.step()
    torch.testing.assert_close(param, ref_param, rtol=1e-10, atol=0)
    assert one_cycle(total - 1, total, warmup) == pytest.approx(1 / 25 / 1e4)


def test_one_cycle_resumes_from_the_step_alone():
    """A fresh AdamW given the checkpoint's optimizer state and set_lr(step) has the lr and
    betas of the uninterrupted run at that step (the schedule is a function of the step)."""
    train = TrainConfig(steps=20, lr=1e-3, lr_schedule="one-cycle")
    params = [torch.nn.Parameter(torch.ones(2)) for _ in range(2)]
    running, fresh = (torch.optim.AdamW([p], betas=train.betas) for p in params)
    set_lr(running, train, 2)
    fresh.load_state_dict(running.state_dict())  # a state.pt written at step 2
    for step in range(3, 10):
        set_lr(running, train, step)
    set_lr(fresh, train, 9)
    keys = ("lr", "betas")
    assert [running.param_groups[0][k] for k in keys] == [fresh.param_groups[0][k] for k in keys]
    assert fresh.param_groups[0]["betas"][0] == one_cycle_beta1(9, 20, 0) != 0.9


def test_one_cycle_peak_and_beta1_cycle():
    total = 100  # rise over 30 steps when warmup is 0: peak at the end of step 29
    assert one_cycle(0, total, 0) == pytest.approx(1 / 25)
    assert one_cycle(29, total, 0) == pytest.approx(1.0)
    assert one_cycle_beta1(0, total, 0) == 0.95 and one_cycle_beta1(29, total, 0) == 0.85
    assert one_cycle_beta1(total - 1, total, 0) == pytest.approx(0.95)
    assert beta1_at("cosine", 5, total, 0) is None


def test_unknown_schedule():
    from difflab.core.errors import ConfigError

    with pytest.raises(ConfigError, match="lr_schedule"):
        lr_factor("linear", 0, 10, 0)
