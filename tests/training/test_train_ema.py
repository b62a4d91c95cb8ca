import torch

from difflab.training.ema import EMA


def _params(m):
    return torch.cat([p.detach().flatten() for p in m.parameters()])


def test_ema_moves_toward_the_model_by_the_exact_factor():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    w0 = _params(model).clone()
    ema = EMA(model, decay=0.9, start=2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # the model moves by 1 everywhere
    w1 = _params(model)
    for step in range(2):  # before the start step: a copy of the weights
        ema.update(model, step)
        torch.testing.assert_close(_params(ema.module), w1, rtol=0, atol=0)
    with torch.no_grad():
        for p in ema.module.parameters():
            p.copy_(p - 1.0)  # put the average back at w0 to watch it move
    n = 5
    for step in range(2, 2 + n):
        ema.update(model, step)
    got = _params(ema.module)
    assert not torch.equal(got, w0)
    # ema_n - w = d^n (ema_0 - w)
    torch.testing.assert_close(got - w1, 0.9**n * (w0 - w1), rtol=1e-5, atol=1e-6)
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_ema_copies_buffers():
    model = torch.nn.BatchNorm1d(2)
    ema = EMA(model, decay=0.5)
    model.running_mean.fill_(3.0)
    ema.update(model, 10)
    torch.testing.assert_close(ema.module.running_mean, torch.full((2,), 1.5))
    model.num_batches_tracked.fill_(7)
    ema.update(model, 11)
    assert int(ema.module.num_batches_tracked) == 7
