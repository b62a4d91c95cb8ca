"""difflab's UNet and DiT against diffusers' UNet2DModel and DiTTransformer2DModel holding the
same weights: reference outputs in float64 (random weights, inputs, times and labels), and the
weight interchange both ways, through a save_pretrained folder too."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from difflab.conditioning import NULL_LABEL, Condition
from difflab.core.errors import ConfigError
from difflab.integrations.diffusers_weights import (
    export_diffusers,
    from_diffusers,
    import_diffusers,
    to_diffusers,
    use_difflab_time_features,
)
from difflab.networks import DiT, DiTConfig, UNet, UNetConfig, build_network

diffusers = pytest.importorskip("diffusers")

CLASSES = 3
UNETS = {  # two levels, attention at 4x4 and in the middle
    "one-head": dict(channel_mults=(1, 2), num_heads=1),
    "two-heads": dict(channel_mults=(1, 2, 2), num_heads=2, attention_resolutions=(4, 2)),
}


def _unet_config(num_classes: int | None, **fields) -> UNetConfig:
    base = dict(in_channels=3, out_channels=2, image_size=8, base_channels=8)
    base |= dict(blocks_per_level=1, attention_resolutions=(4,), dropout=0.0, norm_groups=4)
    return UNetConfig(**(base | fields), num_classes=num_classes)


def _dit_config(num_classes: int | None) -> DiTConfig:
    return DiTConfig(
        in_channels=3,
        out_channels=2,
        image_size=8,
        patch_size=2,
        hidden_size=16,
        depth=2,
        num_heads=2,
        num_classes=num_classes,
    )


def _randomised(model: nn.Module, seed: int) -> nn.Module:
    """float64, eval mode, every parameter N(0, 0.3): zero-initialised branches count too."""
    gen = torch.Generator().manual_seed(seed)
    model = model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
    return model


def _one_embedder(model: nn.Module, zero_labels: bool) -> None:
    """Block 0's time and label embedders in every block, as difflab's DiT has one (an
    unconditional DiT exports a zero label table)."""
    first = model.transformer_blocks[0].norm1.emb
    if zero_labels:
        nn.init.zeros_(first.class_embedder.embedding_table.weight)
    for block in model.transformer_blocks[1:]:
        block.norm1.emb.load_state_dict(first.state_dict())


def _inputs(num_classes: int | None):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, 8, 8, generator=gen, dtype=torch.float64)
    # float32 times: diffusers computes its sinusoid in float32 whatever t's dtype, difflab in
    # t's dtype, so both then see the same time features
    t = 999 * torch.rand(5, generator=gen, dtype=torch.float64).float()
    if num_classes is None:
        return x, t, None
    return x, t, torch.tensor([0, 2, NULL_LABEL, 1, 2])


def _assert_same(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    """Float64 sums in another order differ by ~1e-15; any wrong layer by far more."""
    assert ours.abs().max() > 0.1  # outputs of random weights, not zero-initialised ones
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("num_classes", [None, CLASSES])
@pytest.mark.parametrize("layout", list(UNETS))
def test_unet_computes_diffusers_unet2dmodel(num_classes, layout):
    """UNet2DModel (DDPM layout, random weights) imported into difflab gives its outputs;
    diffusers' class k + 1 is difflab's label k, its class 0 the null label."""
    config = _unet_config(num_classes, **UNETS[layout])
    reference = _randomised(to_diffusers(UNet(config)), seed=0)
    ours = from_diffusers(reference)
    assert ours.config == config
    x, t, labels = _inputs(num_classes)
    cond = None if labels is None else Condition(labels=labels)
    with torch.no_grad():
        out = ours(x, t, cond)
        ref = reference(x, t, class_labels=None if labels is None else labels - NULL_LABEL)
    _assert_same(out, ref.sample)


@pytest.mark.parametrize("num_classes", [None, CLASSES])
def test_dit_computes_diffusers_dit_transformer(num_classes):
    """DiTTransformer2DModel (random weights, difflab's time features) imported into difflab
    gives its outputs; diffusers' null class is the last row, difflab's NULL_LABEL."""
    config = _dit_config(num_classes)
    reference = use_difflab_time_features(_randomised(to_diffusers(DiT(config)), seed=0))
    _one_embedder(reference, zero_labels=num_classes is None)
    ours = from_diffusers(reference)
    assert ours.config == config
    x, t, labels = _inputs(num_classes)
    cond = None if labels is None else Condition(labels=labels)
    if labels is None:
        labels = torch.zeros(5, dtype=torch.long)
    with torch.no_grad():
        out = ours(x, t, cond)
        ref = reference(x, t, class_labels=torch.where(labels == NULL_LABEL, CLASSES, labels))
    _assert_same(out, ref.sample)


EXPORTS = {  # a network of each kind, float32 as runs save them
    "unet-classes": lambda: UNet(_unet_config(CLASSES, **UNETS["two-heads"])),
    "unet": lambda: UNet(_unet_config(None, **UNETS["one-head"])),
    "dit-classes": lambda: DiT(_dit_config(CLASSES)),
    "dit": lambda: DiT(_dit_config(None)),
}


@pytest.mark.parametrize("kind", list(EXPORTS))
def test_export_folder_loads_in_diffusers_and_imports_back(tmp_path, kind):
    """export_diffusers writes a save_pretrained folder: diffusers' from_pretrained reads the
    converted weights exactly, and import_diffusers gives back the same network."""
    network = _randomised(EXPORTS[kind](), seed=2).float()
    folder = export_diffusers(network, tmp_path / "model")
    assert (folder / "config.json").is_file() and not list(tmp_path.glob(".*tmp"))
    cls = getattr(diffusers, type(to_diffusers(network)).__name__)
    loaded = cls.from_pretrained(folder)
    expected = to_diffusers(network).state_dict()
    assert loaded.state_dict().keys() == expected.keys()
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in expected.items())
    back = import_diffusers(folder)
    assert back.config == network.config
    assert all(torch.equal(back.state_dict()[k], v) for k, v in network.state_dict().items())


@pytest.mark.parametrize(
    ("name", "size", "options"),
    [
        ("unet-tiny", 8, {}),
        ("unet-small", 28, {}),
        ("unet-cifar10", 32, {"base_channels": 32, "norm_groups": 8}),  # its layout, narrower
        ("dit-tiny", 8, {}),
        ("dit-s/2", 8, {"depth": 1}),
    ],
)
def test_every_preset_has_a_diffusers_counterpart(name, size, options):
    network = build_network(name, in_channels=1, image_size=size, num_classes=10, options=options)
    assert from_diffusers(to_diffusers(network)).config == network.config


def test_settings_difflab_cannot_compute_are_named():
    unet = diffusers.UNet2DModel(**{**_export_config(), "freq_shift": 1})
    with pytest.raises(ConfigError, match="freq_shift=1"):
        from_diffusers(unet)
    heads = _unet_config(None, channel_mults=(1, 2), num_heads=2, attention_resolutions=(8, 4))
    with pytest.raises(ConfigError, match="num_heads=2.*widths \\[8, 16\\]"):
        to_diffusers(UNet(heads))
    with pytest.raises(ConfigError, match="mlp_ratio"):
        to_diffusers(DiT(DiTConfig(hidden_size=16, depth=1, num_heads=2, mlp_ratio=2.0)))
    with pytest.raises(ConfigError, match="config.json"):
        import_diffusers("/nonexistent")


def test_export_replaces_an_earlier_export_but_no_other_folder(tmp_path):
    unet, dit = _randomised(EXPORTS["unet"](), 0).float(), DiT(_dit_config(None))
    export_diffusers(unet, tmp_path / "model")
    export_diffusers(dit, tmp_path / "model")
    assert isinstance(import_diffusers(tmp_path / "model"), DiT)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    (tmp_path / "photos").mkdir()
    with pytest.raises(ConfigError, match="photos.*not a diffusers model folder"):
        export_diffusers(unet, tmp_path / "photos")


def _export_config() -> dict:
    from difflab.integrations.diffusers_weights.unet import diffusers_unet_config

    return diffusers_unet_config(_unet_config(None, **UNETS["one-head"]))
