import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from difflab.parameterization import PARAMETERIZATIONS, prediction_from_output, training_target


@settings(max_examples=50, deadline=None)
@given(st.floats(0.01, 0.99), st.integers(0, 2**31 - 1))
def test_round_trips(alpha_bar, seed):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64)
    alpha = torch.tensor(alpha_bar, dtype=torch.float64).sqrt()
    sigma = (1 - alpha**2).sqrt()
    x_t = alpha * x0 + sigma * eps
    for kind in PARAMETERIZATIONS:
        target = training_target(kind, x0=x0, eps=eps, alpha=alpha, sigma=sigma)
        pred = prediction_from_output(kind, target, x_t=x_t, alpha=alpha, sigma=sigma)
        torch.testing.assert_close(pred.x0, x0)
        torch.testing.assert_close(pred.eps, eps)
