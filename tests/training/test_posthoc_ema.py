"""Power-function EMA against its closed-form profile, and post-hoc EMA reconstruction."""

import numpy as np
import pytest
import torch

from difflab.training.ema import EMA
from difflab.training.posthoc_ema import (
    combine,
    gamma_from_sigma_rel,
    posthoc_coefficients,
    power_profile,
    sigma_rel_from_gamma,
)


def _trajectory(steps: int, size: int = 5, seed: int = 0) -> torch.Tensor:
    """Synthetic weights theta_n, n = 1..steps: a drift plus noise, float64."""
    g = torch.Generator().manual_seed(seed)
    n = torch.arange(1, steps + 1, dtype=torch.float64)[:, None]
    return torch.sin(n / 40.0) + 0.3 * torch.randn(steps, size, generator=g, dtype=torch.float64)


def _run_ema(
    theta: torch.Tensor, gamma: float, start: int, keep: set[int]
) -> dict[int, torch.Tensor]:
    """EMA.update after each of len(theta) + start steps (weights constant before start);
    the average after the averaged steps in `keep`."""
    model = torch.nn.Linear(theta.shape[1], 1, bias=False).double()
    ema = EMA(model, decay=0.0, start=start, gamma=gamma)
    out = {}
    for step in range(start + theta.shape[0]):
        n = max(step - start, 0)
        with torch.no_grad():
            model.weight.copy_(theta[n][None])
        ema.update(model, step)
        if step >= start and n + 1 in keep:
            out[n + 1] = ema.module.weight.detach()[0].clone()
    return out


def test_sigma_rel_and_gamma_are_inverse():
    for sigma_rel in (0.01, 0.05, 0.1, 0.2):
        gamma = gamma_from_sigma_rel(sigma_rel)
        assert sigma_rel_from_gamma(gamma) == pytest.approx(sigma_rel, rel=1e-12)
    assert gamma_from_sigma_rel(0.10) == pytest.approx(6.94, abs=0.01)  # EDM2 Sec. 3.1
    assert gamma_from_sigma_rel(0.05) == pytest.approx(16.97, abs=0.01)
    with pytest.raises(ValueError, match="sigma_rel"):
        gamma_from_sigma_rel(0.5)


def test_power_profile_is_a_distribution_of_width_sigma_rel():
    gamma, steps = gamma_from_sigma_rel(0.1), 200_000
    n = np.arange(1, steps + 1)
    w = power_profile(gamma, steps, n)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    mean = (w * n).sum()
    std = np.sqrt((w * (n - mean) ** 2).sum())
    assert std / steps == pytest.approx(0.1, rel=1e-3)  # sigma_rel: width relative to t


@pytest.mark.parametrize("start", [0, 3])
def test_power_ema_equals_its_definition_at_every_step(start):
    """ema after s averaged steps = sum_n w_s(n) theta_n, with the closed-form weights."""
    gamma, steps = 4.5, 40
    theta = _trajectory(steps)
    got = _run_ema(theta, gamma, start, keep=set(range(1, steps + 1)))
    for s in range(1, steps + 1):
        w = torch.from_numpy(power_profile(gamma, s, np.arange(1, steps + 1)))
        torch.testing.assert_close(got[s], w @ theta, rtol=0, atol=1e-12)
    assert EMA(torch.nn.Linear(1, 1), 0.0, start=start, gamma=gamma).decay_at(start) == 0.0


def test_posthoc_of_a_snapshot_profile_is_that_snapshot():
    gamma, steps = 6.94, 300
    theta = _trajectory(steps)
    times = [100, 200, 300]
    snaps = _run_ema(theta, gamma, 0, keep=set(times))
    x = posthoc_coefficients([(s, gamma) for s in times], (200, gamma))
    np.testing.assert_allclose(x, [0.0, 1.0, 0.0], atol=1e-8)
    got = combine([{"w": snaps[s]} for s in times], x)["w"]
    torch.testing.assert_close(got, snaps[200], rtol=0, atol=1e-8)


def test_posthoc_reconstructs_a_profile_chosen_after_training():
    """Snapshots every 10% of the run at sigma_rel 0.05 and 0.10; the target sigma_rel 0.07 at
    the end. The combination of snapshots is exactly the EMA of the fitted profile (linearity
    checked on real EMA runs), and that profile is within 2% of the target's."""
    steps = 1000
    theta = _trajectory(steps)
    times = list(range(100, steps + 1, 100))
    gammas = [gamma_from_sigma_rel(0.05), gamma_from_sigma_rel(0.10)]
    snapshots, states = [], []
    for g in gammas:
        run = _run_ema(theta, g, 0, keep=set(times))
        snapshots += [(s, g) for s in times]
        states += [{"w": run[s]} for s in times]
    target = (steps, gamma_from_sigma_rel(0.07))
    x = posthoc_coefficients(snapshots, target)
    got = combine(states, x)["w"]

    n = np.arange(1, steps + 1)
    fitted = sum(xi * power_profile(g, s, n) for xi, (s, g) in zip(x, snapshots, strict=True))
    torch.testing.assert_close(got, torch.from_numpy(fitted) @ theta, rtol=0, atol=1e-9)
    wanted = power_profile(target[1], steps, n)
    assert np.linalg.norm(fitted - wanted) < 0.02 * np.linalg.norm(wanted)
    direct = _run_ema(theta, target[1], 0, keep={steps})[steps]
    nearest = states[times.index(steps)]["w"]  # sigma_rel 0.05 at the end
    assert (got - direct).norm() < 0.2 * (nearest - direct).norm()
