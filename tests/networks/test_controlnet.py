"""ControlNet: zero convolutions make it the identity at initialisation, training moves them
first, labels and hints stack, and its weights round-trip through safetensors."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from difflab.conditioning import Condition, classifier_free_guidance, drop_condition
from difflab.core.errors import DifflabError
from difflab.networks import ControlledUNet, ControlNet, UNet, build_network
from difflab.networks.controlnet import COPIED
from difflab.parameterization import Denoiser
from difflab.schedules import make_schedule

N, C, SIZE, HINT_C = 2, 2, 8, 1


def base_unet(num_classes: int | None = 3, embedding_dim: int = 0) -> UNet:
    options = {"base_channels": 8, "norm_groups": 4}
    return build_network(
        "unet-tiny",
        in_channels=C,
        image_size=SIZE,
        num_classes=num_classes,
        options=options,
        embedding_dim=embedding_dim,
    )


def perturb(net: torch.nn.Module) -> torch.nn.Module:
    """Move every parameter off its (partly zero) initialisation, as training would."""
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net


def controlled(num_classes: int | None = 3, embedding_dim: int = 0) -> ControlledUNet:
    """A trained-looking base (its zero-initialised output layer would hide everything) with a
    fresh ControlNet copied from it."""
    base = perturb(base_unet(num_classes, embedding_dim))
    return ControlledUNet.from_unet(base, hint_channels=HINT_C)


def inputs() -> tuple[torch.Tensor, torch.Tensor, Condition]:
    x = torch.randn(N, C, SIZE, SIZE)
    t = torch.tensor([10.0, 900.0])
    cond = Condition(labels=torch.tensor([0, 2]), hint=hint())
    return x, t, cond


def hint() -> torch.Tensor:
    return torch.rand(N, HINT_C, SIZE, SIZE) * 2 - 1


def with_hint(cond: Condition, h: torch.Tensor) -> Condition:
    return Condition(labels=cond.labels, hint=h)


@pytest.mark.parametrize("num_classes", [None, 3])
def test_initially_equals_the_base_exactly_for_any_hint(num_classes):
    model = controlled(num_classes)
    x, t, cond = inputs()
    labels = cond.labels if num_classes else None
    plain = model.base(x, t, Condition(labels=labels))
    assert plain.abs().max() > 0
    for h in (hint(), torch.zeros(N, HINT_C, SIZE, SIZE), 5 * hint()):
        assert torch.equal(model(x, t, Condition(labels=labels, hint=h)), plain)
    assert torch.equal(model(x, t, None), model.base(x, t, None))


def test_copied_modules_start_as_the_base_weights_and_are_not_shared():
    model = controlled(embedding_dim=4)
    for name in COPIED:
        base_state = getattr(model.base, name).state_dict()
        copy_state = getattr(model.controlnet, name).state_dict()
        assert base_state.keys() == copy_state.keys()
        for key, value in base_state.items():
            assert torch.equal(copy_state[key], value), f"{name}.{key}"
            assert copy_state[key].data_ptr() != value.data_ptr(), f"{name}.{key} is shared"


def train_step(model, opt, x, t, cond, target) -> None:
    opt.zero_grad()
    ((model(x, t, cond) - target) ** 2).mean().backward()


def zero_conv_params(net: ControlNet) -> list[torch.nn.Parameter]:
    return [*net.zero_convs.parameters(), *net.mid_zero_conv.parameters()]


def grad_norm(params) -> float:
    return sum(float(p.grad.abs().sum()) for p in params)


def test_zero_convolutions_move_first_then_gradients_reach_the_hint_encoder():
    model = controlled().freeze_base()
    net = model.controlnet
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3)
    x, t, cond = inputs()
    target = torch.randn_like(x)
    zero_ids = {id(p) for p in zero_conv_params(net)}
    upstream = [p for p in net.parameters() if id(p) not in zero_ids]
    first, last = net.hint_encoder.layers[0], net.hint_encoder.layers[-1]

    # Step 0: only the zero convolutions get gradients; everything behind them gets zero.
    train_step(model, opt, x, t, cond, target)
    assert all(p.grad.abs().sum() > 0 for p in zero_conv_params(net))
    assert grad_norm(upstream) == 0.0
    opt.step()
    # Step 1: the copy's encoder and the hint encoder's last (zero) conv now get gradients, but
    # that conv still outputs zero, so the first layer gets none and the hint does not matter.
    train_step(model, opt, x, t, cond, target)
    assert grad_norm(net.conv_in.parameters()) > 0 and grad_norm(net.down.parameters()) > 0
    assert grad_norm(last.parameters()) > 0
    assert grad_norm(first.parameters()) == 0.0
    with torch.no_grad():
        assert torch.equal(model(x, t, cond), model(x, t, with_hint(cond, hint())))
    opt.step()
    # Step 2: the hint encoder's last conv has moved; gradients reach its first layer.
    train_step(model, opt, x, t, cond, target)
    assert grad_norm(first.parameters()) > 0


def test_training_with_a_frozen_base_changes_only_the_controlnet():
    model = controlled().freeze_base()
    base_before = {k: v.clone() for k, v in model.base.state_dict().items()}
    assert {id(p) for p in model.trainable_parameters()} == {
        id(p) for p in model.controlnet.parameters()
    }
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2)
    x, t, cond = inputs()
    target = torch.randn_like(x)
    for _ in range(3):
        train_step(model, opt, x, t, cond, target)
        opt.step()
    for key, value in model.base.state_dict().items():
        assert torch.equal(value, base_before[key]), key
    assert all(p.abs().sum() > 0 for p in zero_conv_params(model.controlnet))
    with torch.no_grad():
        out = model(x, t, cond)
        assert not torch.allclose(out, model(x, t, with_hint(cond, hint())))
        assert not torch.allclose(out, model.base(x, t, cond))


def test_labels_and_hints_stack_under_classifier_free_guidance():
    model = perturb(controlled()).eval()
    denoiser = Denoiser(model, make_schedule("linear"), "eps")
    x, t, cond = inputs()
    null = cond.null()
    assert torch.equal(null.labels, torch.tensor([-1, -1])) and not null.hint.any()
    with torch.no_grad():
        c, u = denoiser(x, t, cond), denoiser(x, t, null)
        guided = classifier_free_guidance(denoiser, cond, null, 3.0)(x, t)
        torch.testing.assert_close(guided.eps, u.eps + 3.0 * (c.eps - u.eps))
        assert torch.equal(classifier_free_guidance(denoiser, cond, null, 1.0)(x, t).eps, c.eps)
        assert torch.equal(classifier_free_guidance(denoiser, cond, null, 0.0)(x, t).eps, u.eps)
        # Both kinds of condition reach the output.
        other_labels = Condition(labels=torch.tensor([1, 1]), hint=cond.hint)
        assert not torch.allclose(denoiser(x, t, other_labels).eps, c.eps)
        assert not torch.allclose(denoiser(x, t, with_hint(cond, hint())).eps, c.eps)


def test_dropped_hint_is_a_zero_image_with_its_own_residuals():
    model = perturb(controlled())
    x, t, cond = inputs()
    dropped = drop_condition(cond, torch.tensor([True, True]))
    zero_image = Condition(labels=torch.full((N,), -1), hint=torch.zeros(N, HINT_C, SIZE, SIZE))
    assert torch.equal(dropped.hint, zero_image.hint)
    with torch.no_grad():
        skips, mid = model.controlnet(x, t, dropped)
        skips_zero, mid_zero = model.controlnet(x, t, zero_image)
        assert all(torch.equal(a, b) for a, b in zip(skips, skips_zero, strict=True))
        assert torch.equal(mid, mid_zero) and mid.abs().max() > 0
        # Not "no control": the base alone with the null label differs.
        base_only = model(x, t, Condition(labels=zero_image.labels))
        assert not torch.allclose(model(x, t, dropped), base_only)


def test_state_dict_round_trips_through_safetensors(tmp_path):
    model = perturb(controlled())
    x, t, cond = inputs()
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
    fresh_base = base_unet()
    fresh = ControlledUNet(fresh_base, ControlNet(fresh_base.config, hint_channels=HINT_C))
    fresh.load_state_dict(load_file(str(tmp_path / "model.safetensors")))
    with torch.no_grad():
        assert torch.equal(fresh(x, t, cond), model(x, t, cond))


def test_mismatched_hint_or_base_is_a_clear_error():
    model = controlled()
    x, t, cond = inputs()
    with pytest.raises(DifflabError, match=r"cond.hint of shape \(2, 1, 8, 8\)"):
        model(x, t, with_hint(cond, torch.zeros(N, 3, SIZE, SIZE)))
    with pytest.raises(DifflabError, match="no hint"):
        model.controlnet(x, t, Condition(labels=cond.labels))
    with pytest.raises(DifflabError, match="base UNet"):
        ControlledUNet(base_unet(None), model.controlnet)


def test_scale_multiplies_the_residuals():
    model = perturb(controlled())
    x, t, cond = inputs()
    with torch.no_grad():
        skips, mid = model.controlnet(x, t, cond)
        model.scale = 0.5
        expected = model.base(
            x, t, cond, skip_residuals=[0.5 * s for s in skips], mid_residual=0.5 * mid
        )
        assert torch.equal(model(x, t, cond), expected)
        model.scale = 0.0
        assert torch.equal(model(x, t, cond), model.base(x, t, cond))
