"""difflab's DiT <-> diffusers' DiTTransformer2DModel, weights exactly.

Three differences are bridged by the mapping: diffusers' 2-D position embedding puts the column
half of the channels first and difflab the row half, so every weight that reads or writes the
token width has the two halves swapped; each diffusers block holds its own copy of the time and
label embedders; diffusers' label table has the null label last (difflab: first). One is not:
diffusers' time features use downscale_freq_shift=1 (frequencies 10000^(-i / (d/2 - 1))),
difflab's and the original DiT's 0, so a converted model computes difflab's network only after
`use_difflab_time_features`. An unconditional DiT becomes num_embeds_ada_norm=1, its table zero.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from difflab.core.errors import ConfigError
from difflab.networks.dit import DiT, DiTConfig

_FREQ_DIM = 256  # diffusers' DiT time features
_FIXED = {  # DiTTransformer2DModel settings difflab's DiT has: the value they must have
    "norm_type": "ada_norm_zero",
    "activation_fn": "gelu-approximate",
    "attention_bias": True,
    "norm_elementwise_affine": False,
    "norm_eps": 1e-6,
    "upcast_attention": False,
}


def _swap_halves(dim: int) -> Tensor:
    """The token-width permutation between the two layouts (its own inverse)."""
    return torch.cat([torch.arange(dim // 2, dim), torch.arange(0, dim // 2)])


def diffusers_dit_config(config: DiTConfig) -> dict[str, Any]:
    """The DiTTransformer2DModel config whose network computes difflab's DiT `config` (with
    `use_difflab_time_features`)."""
    if config.mlp_ratio != 4.0 or config.freq_dim != _FREQ_DIM:
        raise ConfigError(
            f"DiT mlp_ratio={config.mlp_ratio}, freq_dim={config.freq_dim}: diffusers' DiT has "
            f"4.0 and {_FREQ_DIM}"
        )
    return {
        "num_attention_heads": config.num_heads,
        "attention_head_dim": config.hidden_size // config.num_heads,
        "in_channels": config.in_channels,
        "out_channels": config.out_channels,
        "num_layers": config.depth,
        "sample_size": config.image_size,
        "patch_size": config.patch_size,
        "num_embeds_ada_norm": config.num_classes or 1,
        **_FIXED,
    }


def dit_config_from_diffusers(config: dict[str, Any], conditional: bool) -> DiTConfig:
    """difflab's DiTConfig for a DiTTransformer2DModel config; a setting difflab cannot
    compute is a ConfigError naming it."""
    for key, expected in _FIXED.items():
        if config.get(key, expected) != expected:
            raise ConfigError(
                f"DiTTransformer2DModel config {key}={config[key]!r}: difflab's DiT needs "
                f"{expected!r}"
            )
    heads = config["num_attention_heads"]
    return DiTConfig(
        in_channels=config["in_channels"],
        out_channels=config["out_channels"] or config["in_channels"],
        image_size=config["sample_size"],
        patch_size=config["patch_size"],
        hidden_size=heads * config["attention_head_dim"],
        depth=config["num_layers"],
        num_heads=heads,
        num_classes=config["num_embeds_ada_norm"] if conditional else None,
        freq_dim=_FREQ_DIM,
    )


def _pairs(depth: int) -> list[tuple[str, str, str]]:
    """(difflab name, diffusers name, how the token width is laid out in it) of every weight
    but the attention's qkv and the embedders: "rows" writes tokens, "cols" reads them,
    "chunks" writes one modulation vector per token-width chunk."""
    pairs = [(f"patch_embed.{p}", f"pos_embed.proj.{p}", "rows") for p in ("weight", "bias")]
    for i in range(depth):
        b, d = f"blocks.{i}.", f"transformer_blocks.{i}."
        for p in ("weight", "bias"):
            pairs += [
                (f"{b}modulation.1.{p}", f"{d}norm1.linear.{p}", "chunks"),
                (f"{b}attn.proj.{p}", f"{d}attn1.to_out.0.{p}", "rows"),
                (f"{b}mlp.0.{p}", f"{d}ff.net.0.proj.{p}", "cols" if p == "weight" else ""),
                (f"{b}mlp.2.{p}", f"{d}ff.net.2.{p}", "rows"),
            ]
    pairs += [(f"final.modulation.1.{p}", f"proj_out_1.{p}", "chunks") for p in ("weight", "bias")]
    return [*pairs, ("final.linear.weight", "proj_out_2.weight", "cols")] + [
        ("final.linear.bias", "proj_out_2.bias", "")
    ]


def _swap(w: Tensor, layout: str, dim: int) -> Tensor:
    """Swap the token-width halves of `w` in its `layout` (an involution: maps either way)."""
    perm = _swap_halves(dim)
    if layout == "rows":
        return w[perm]
    if layout == "cols":
        return w[:, perm]
    if layout == "chunks":
        return torch.cat([chunk[perm] for chunk in w.split(dim)])
    return w


def _embedders(dit: DiT) -> dict[str, Tensor]:
    """The time and label embedders under diffusers' names (label table: null row last)."""
    mlp = dit.time_embed.mlp
    out = {
        f"timestep_embedder.linear_{n}.{p}": getattr(mlp[i], p)
        for n, i in ((1, 0), (2, 2))
        for p in ("weight", "bias")
    }
    dim = dit.config.hidden_size
    table = dit.label_embed.table.weight if dit.label_embed is not None else torch.zeros(2, dim)
    out["class_embedder.embedding_table.weight"] = table.roll(-1, dims=0)
    return out


def dit_weights_to_diffusers(dit: DiT) -> dict[str, Tensor]:
    """difflab DiT parameters under DiTTransformer2DModel's names and layout."""
    weights, dim = dit.state_dict(), dit.config.hidden_size
    out = {d: _swap(weights[k], how, dim) for k, d, how in _pairs(dit.config.depth)}
    embedders = _embedders(dit)
    for i in range(dit.config.depth):
        out.update({f"transformer_blocks.{i}.norm1.emb.{k}": v for k, v in embedders.items()})
        qkv_w, qkv_b = weights[f"blocks.{i}.attn.qkv.weight"], weights[f"blocks.{i}.attn.qkv.bias"]
        for name, w, b in zip("qkv", qkv_w.chunk(3), qkv_b.chunk(3), strict=True):
            out[f"transformer_blocks.{i}.attn1.to_{name}.weight"] = _swap(w, "cols", dim)
            out[f"transformer_blocks.{i}.attn1.to_{name}.bias"] = b
    return {k: v.detach().clone() for k, v in out.items()}


def dit_weights_from_diffusers(config: DiTConfig, weights: dict[str, Tensor]) -> DiT:
    """A difflab DiT of `config` holding a DiTTransformer2DModel's `weights`; every block's
    embedders must be the same (DiT shares one)."""
    dit, dim = DiT(config).to(next(iter(weights.values())).dtype), config.hidden_size
    state = {k: _swap(weights[d], how, dim) for k, d, how in _pairs(config.depth)}
    first = "transformer_blocks.0.norm1.emb."
    for i in range(config.depth):
        prefix = f"transformer_blocks.{i}."
        for key in (k for k in weights if k.startswith(prefix + "norm1.emb.")):
            if not torch.equal(weights[key], weights[first + key[len(prefix) + 10 :]]):
                raise ConfigError(f"DiT weight {key} differs from block 0's: difflab shares one")
        state[f"blocks.{i}.attn.qkv.weight"] = torch.cat(
            [_swap(weights[f"{prefix}attn1.to_{n}.weight"], "cols", dim) for n in "qkv"]
        )
        state[f"blocks.{i}.attn.qkv.bias"] = torch.cat(
            [weights[f"{prefix}attn1.to_{n}.bias"] for n in "qkv"]
        )
    for n, i in ((1, 0), (2, 2)):
        for p in ("weight", "bias"):
            state[f"time_embed.mlp.{i}.{p}"] = weights[f"{first}timestep_embedder.linear_{n}.{p}"]
    if config.num_classes is not None:
        table = weights[first + "class_embedder.embedding_table.weight"]
        state["label_embed.table.weight"] = table.roll(1, dims=0)
    dit.load_state_dict(state, strict=True)
    return dit


def use_difflab_time_features(model: nn.Module) -> nn.Module:
    """Make a diffusers DiT's time features difflab's (downscale_freq_shift 0, as the original
    DiT): the one difference no weight mapping bridges. Returns `model`, changed in place."""
    for block in model.transformer_blocks:
        block.norm1.emb.time_proj.downscale_freq_shift = 0
    return model
