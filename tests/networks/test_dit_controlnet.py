"""ControlNet on a DiT: zero projections make it the base at initialisation and move first,
its copies start as the base's first blocks, residuals join the base after the matching
blocks, and hints may be larger than the tokens' input by the codec's factor."""

import pytest
import torch

from difflab.conditioning import Condition
from difflab.core.errors import DifflabError
from difflab.networks import ControlledDiT, DiT, build_network
from difflab.networks.dit_controlnet import COPIED

N, C, SIZE, HINT_C = 2, 2, 8, 1


def perturb(net: torch.nn.Module) -> torch.nn.Module:
    """Move every parameter off its (partly zero) initialisation, as training would."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return net


def base_dit(num_classes: int | None = 3) -> DiT:
    options = {"hidden_size": 16, "num_heads": 2, "depth": 3}
    net = build_network("dit-tiny", in_channels=C, image_size=SIZE, num_classes=num_classes,
                        options=options)  # fmt: skip
    return perturb(net)


def inputs(factor: int = 1) -> tuple[torch.Tensor, torch.Tensor, Condition]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, C, SIZE, SIZE, generator=g)
    hint = torch.rand(N, HINT_C, SIZE * factor, SIZE * factor, generator=g) * 2 - 1
    return x, torch.tensor([10.0, 900.0]), Condition(labels=torch.tensor([0, 2]), hint=hint)


@pytest.mark.parametrize("num_classes", [None, 3])
def test_initially_equals_the_base_exactly_for_any_hint(num_classes):
    model = ControlledDiT.from_base(base_dit(num_classes), HINT_C)
    x, t, cond = inputs()
    labels = cond.labels if num_classes else None
    plain = model.base(x, t, Condition(labels=labels))
    assert plain.abs().max() > 0
    for h in (cond.hint, torch.zeros_like(cond.hint), 5 * cond.hint):
        assert torch.equal(model(x, t, Condition(labels=labels, hint=h)), plain)
    assert torch.equal(model(x, t, None), model.base(x, t, None))


def test_copies_start_as_the_base_embeddings_and_first_blocks_not_shared():
    model = ControlledDiT.from_base(base_dit(), HINT_C)
    net = model.controlnet
    assert len(net.blocks) == 1  # depth // 2 of the base's 3
    pairs = [(getattr(net, n), getattr(model.base, n)) for n in COPIED]
    for mine, theirs in [*pairs, (net.blocks[0], model.base.blocks[0])]:
        for (key, a), b in zip(
            mine.state_dict().items(), theirs.state_dict().values(), strict=True
        ):
            assert torch.equal(a, b) and a.data_ptr() != b.data_ptr(), key


def test_block_residuals_are_added_after_their_blocks():
    """DiT(block_residuals=[r0, r1]) against its blocks run by hand."""
    base = base_dit()
    x, t, cond = inputs()
    g = torch.Generator().manual_seed(2)
    residuals = [torch.randn(N, (SIZE // 2) ** 2, 16, generator=g) for _ in range(2)]
    tokens = base.patch_embed(x).flatten(2).transpose(1, 2) + base.pos_embed
    c = base.time_embed(t) + base.label_embed(cond, N, x.device)
    for i, block in enumerate(base.blocks):
        tokens = block(tokens, c) + (residuals[i] if i < 2 else 0)
    expected = base.unpatchify(base.final(tokens, c))
    torch.testing.assert_close(base(x, t, cond, block_residuals=residuals), expected)


def grad_norm(params) -> float:
    return sum(float(p.grad.abs().sum()) for p in params)


def test_zero_projections_move_first_then_gradients_reach_the_hint_embedding():
    model = ControlledDiT.from_base(base_dit(), HINT_C).freeze_base()
    net = model.controlnet
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    x, t, cond = inputs()
    target = torch.randn_like(x)

    def step() -> None:
        opt.zero_grad()
        ((model(x, t, cond) - target) ** 2).mean().backward()

    step()  # only the output projections get gradients
    assert grad_norm(net.after_proj.parameters()) > 0
    assert grad_norm(net.before_proj.parameters()) == 0 == grad_norm(net.blocks.parameters())
    opt.step()
    step()  # the copy and the hint's projection now; the hint embedding not yet
    assert grad_norm(net.before_proj.parameters()) > 0 and grad_norm(net.blocks.parameters()) > 0
    assert grad_norm(net.hint_embed.parameters()) == 0
    opt.step()
    step()
    assert grad_norm(net.hint_embed.parameters()) > 0
    assert all(p.grad is None for p in model.base.parameters())


def test_hints_of_a_latent_run_are_factor_times_larger():
    model = perturb(ControlledDiT.from_base(base_dit(), HINT_C, hint_factor=2))
    x, t, cond = inputs(factor=2)
    assert not torch.equal(model(x, t, cond), model.base(x, t, cond))
    model.scale = 0.0
    assert torch.equal(model(x, t, cond), model.base(x, t, cond))
    with pytest.raises(DifflabError, match=r"cond.hint of shape \(2, 1, 16, 16\)"):
        model(x, t, inputs()[2])
