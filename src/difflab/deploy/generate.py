"""Sampling an exported run without torch: the network's output turned into (x0, eps) by its
parameterization, classifier-free guidance against the null label (-1), the zero hint and the
export's null embedding, a numpy sampler over the grid, and the VAE decoder of a latent run."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from difflab.core.errors import ConfigError
from difflab.deploy.backends import Graph
from difflab.deploy.samplers import DEPLOY_SAMPLERS, SAMPLER_OPTIONS, DenoiseAt, NoiseFn
from difflab.deploy.spec import Grid

NULL_LABEL = -1  # the null label of difflab.conditioning, which the graph takes as it is


def prediction(
    kind: str, out: np.ndarray, x: np.ndarray, alpha: float, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """(x0, eps) from a network output: eps, x0 or v = alpha eps - sigma x0 (Salimans & Ho
    2022, appendix D), as difflab.parameterization.prediction_from_output."""
    a, s = np.float32(alpha), np.float32(sigma)
    if kind == "eps":
        return (x - s * out) / a, out
    if kind == "x0":
        return out, (x - a * out) / s
    if kind == "v":
        return a * x - s * out, s * x + a * out
    raise ConfigError(f"export.json: unknown parameterization {kind!r}")


def guided(
    network: Graph,
    grid: Grid,
    parameterization: str,
    *,
    labels: np.ndarray | None,
    hints: np.ndarray | None,
    guidance: float,
    embeddings: np.ndarray | None = None,
    null_embedding: np.ndarray | None = None,
) -> DenoiseAt:
    """denoise(x, i) -> (x0, eps) of a class, ControlNet or unCLIP decoder graph, guided when
    there are labels or embeddings [N, E] against the null condition (cond.null(): the null
    label, the zero hint, null_embedding [E]), unguided otherwise."""
    cond = {"labels": labels, "hint": hints, "embedding": embeddings}
    present = {k: v for k, v in cond.items() if v is not None}
    null = {k: null_feed(k, v, null_embedding) for k, v in present.items()}
    guide = labels is not None or embeddings is not None
    return guided_feeds(network, grid, parameterization, cond=present,
                        null=null if guide else None, guidance=guidance)  # fmt: skip


def null_feed(key: str, value: np.ndarray, null_embedding: np.ndarray | None) -> np.ndarray:
    """The null value of a condition feed [N, ...]: the null label, the zero hint, the null
    embedding [E] repeated."""
    if key == "labels":
        return np.full_like(value, NULL_LABEL)
    if key == "embedding":
        if null_embedding is None:
            raise ConfigError("embeddings need the export's null embedding (export.json)")
        return np.repeat(null_embedding.astype(np.float32)[None], len(value), axis=0)
    return np.zeros_like(value)


def guided_feeds(
    network: Graph,
    grid: Grid,
    parameterization: str,
    *,
    cond: dict[str, np.ndarray],
    null: dict[str, np.ndarray] | None,
    guidance: float,
    names: tuple[str, str] = ("x", "t"),
) -> DenoiseAt:
    """denoise(x, i) -> (x0, eps): D_w = D_u + w (D_c - D_u) (Ho & Salimans 2022, eq. 6) of the
    graph under the condition feeds `cond` and `null`, both halves in one batch; scale 1 is the
    conditional denoiser alone, 0 the null one, and null=None is not guided. `names`: the
    graph's inputs of x and of the network's time."""
    double = null is not None and guidance not in (0.0, 1.0)
    if null is not None and guidance == 0.0:
        cond = null
    if double:
        cond = {k: np.concatenate([v, null[k]]) for k, v in cond.items()}

    def denoise(x: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
        x_in = np.concatenate([x, x]) if double else x
        t = np.full((len(x_in),), grid.network_t[i], dtype=np.float32)
        out = network({names[0]: x_in, names[1]: t, **cond}).astype(np.float32)
        x0, eps = prediction(parameterization, out, x_in, grid.alpha[i], grid.sigma[i])
        if not double:
            return x0, eps
        (c_x0, u_x0), (c_eps, u_eps) = np.split(x0, 2), np.split(eps, 2)
        return u_x0 + guidance * (c_x0 - u_x0), u_eps + guidance * (c_eps - u_eps)

    return denoise


def draw(
    network: Graph,
    grid: Grid,
    x_T: np.ndarray,
    *,
    parameterization: str,
    sampler: str = "ddim",
    labels: np.ndarray | None = None,
    hints: np.ndarray | None = None,
    guidance: float = 1.0,
    options: dict[str, float] | None = None,
    noise: NoiseFn | None = None,
    decoder: Graph | None = None,
    embeddings: np.ndarray | None = None,
    null_embedding: np.ndarray | None = None,
) -> np.ndarray:
    """Images in [-1, 1] float32 [N, C, H, W] from the starting noise x_T [N, c, h, w] (latents
    for a run with a decoder), labels [N] int64 or None, hints [N, C_hint, H, W] or None, and
    for an unCLIP decoder's graph (null_embedding [E]: ExportSpec.null_embedding) embeddings
    [N, E] or None (unguided, the null embedding fed)."""
    run_sampler = checked_sampler(sampler, options)
    if null_embedding is None and embeddings is not None:
        raise ConfigError("this export's graph has no embedding input; it takes no embeddings")
    if null_embedding is not None:
        network = null_embedding_fed(network, null_embedding)
    denoise = guided(
        network, grid, parameterization, labels=labels, hints=hints, guidance=guidance,
        embeddings=None if embeddings is None else embeddings.astype(np.float32),
        null_embedding=null_embedding,
    )  # fmt: skip
    x0 = run_sampler(denoise, x_T, grid, noise=noise, **(options or {}))
    return x0 if decoder is None else decoder({"z": x0}).astype(np.float32)


def null_embedding_fed(network: Graph, null_embedding: np.ndarray) -> Graph:
    """The graph fed null_embedding [E] for every sample when the feeds hold no embedding (what
    torch's network reads for an absent one)."""

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        if "embedding" not in feeds:
            feeds = {**feeds, "embedding": null_feed("embedding", feeds["x"], null_embedding)}
        return network(feeds)

    return run


def checked_sampler(sampler: str, options: dict[str, float] | None) -> Callable[..., np.ndarray]:
    """The numpy sampler of that name; ConfigError for one difflab.deploy lacks or an option
    it does not take."""
    if sampler not in DEPLOY_SAMPLERS:
        known = ", ".join(DEPLOY_SAMPLERS)
        raise ConfigError(f"sampler {sampler!r} is not in difflab.deploy; it has {known}")
    extra = sorted(set(options or {}) - set(SAMPLER_OPTIONS[sampler]))
    if extra:
        raise ConfigError(f"difflab.deploy's {sampler} takes no option {extra[0]!r}")
    return DEPLOY_SAMPLERS[sampler]


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Images in [-1, 1] -> uint8 [0, 255], rounded half to even and clamped (as difflab's)."""
    return np.clip(np.round((x.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
