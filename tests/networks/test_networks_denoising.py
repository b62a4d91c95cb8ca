"""Every network family plugs into the Denoiser and the denoising loss, with float64 times from
both discrete and continuous schedules."""

import pytest
import torch

from difflab.conditioning import Condition
from difflab.losses import DenoisingLoss
from difflab.networks import build_network
from difflab.parameterization import Denoiser
from difflab.schedules import make_schedule


@pytest.mark.parametrize("num_steps", [1000, None])
@pytest.mark.parametrize("name", ["unet-tiny", "dit-tiny"])
def test_network_trains_through_the_denoising_loss(name, num_steps):
    schedule = make_schedule("cosine", num_steps=num_steps)
    net = build_network(name, in_channels=1, image_size=8, num_classes=10)
    x0, eps = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    t = schedule.sample_training_t(4)  # float64
    cond = Condition(labels=torch.tensor([0, 5, 9, -1]))
    loss_fn = DenoisingLoss(schedule, "eps")
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        loss = loss_fn(net, x0, t, eps, cond)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < losses[0]
    prediction = Denoiser(net, schedule, "eps")(x0, t, cond)
    assert prediction.x0.shape == prediction.eps.shape == x0.shape
    assert torch.isfinite(prediction.x0).all()
