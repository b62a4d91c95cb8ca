"""unCLIP's cascade (Ramesh et al. 2022, Figure 2): caption -> prior -> image embedding ->
decoder -> image -> upsampler -> larger image, from a folder whose `cascade.yaml` names the
stages' runs (`prior`, `decoder`, optional `upsampler`; paths relative to the folder).
Each stage samples with its run's `sample` section; image i uses seed + i in every stage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from difflab.conditioning import Condition
from difflab.config.recipes import read_yaml
from difflab.core.errors import ConfigError
from difflab.data import to_uint8
from difflab.encoders import load_text_encoder
from difflab.integrations.unclip.prior_data import to_unit
from difflab.integrations.unclip.upsampling import upsample
from difflab.runs.load import LoadedRun, load_run
from difflab.sampling.generation import sample_images
from difflab.sampling.prior import sample_prior

CASCADE_FILE = "cascade.yaml"
STAGES = ("prior", "decoder", "upsampler")


@dataclass
class Cascade:
    prior: LoadedRun
    decoder: LoadedRun
    upsampler: LoadedRun | None = None


def read_cascade(folder: Path | str) -> dict[str, Path]:
    """The stages' run folders named by FOLDER/cascade.yaml; ConfigError naming the file and
    key when one is missing, unknown or not a string."""
    path = Path(folder) / CASCADE_FILE
    if not path.is_file():
        raise ConfigError(
            f"--cascade {folder}: no {CASCADE_FILE} naming the prior, decoder and upsampler runs"
        )
    data = read_yaml(path)
    unknown = sorted(set(data) - set(STAGES))
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; expected {', '.join(STAGES)}")
    runs = {}
    for stage in STAGES:
        value = data.get(stage)
        if value is None and stage != "upsampler":
            raise ConfigError(f"{path}: key {stage!r} (the {stage} run's folder) is missing")
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{path}: key {stage!r} must be a run folder, got {value!r}")
        if value is not None:
            runs[stage] = Path(folder) / Path(value).expanduser()
    return runs


def load_cascade(folder: Path | str, device: torch.device | str) -> Cascade:
    """The stages' runs (EMA weights), checked to fit together."""
    runs = {stage: load_run(path, device=device) for stage, path in read_cascade(folder).items()}
    cascade = Cascade(**runs)
    check_cascade(cascade, str(folder))
    return cascade


def check_cascade(c: Cascade, where: str) -> None:
    """Each stage takes what the one before makes: the prior's embedding size is the decoder's
    embedding_dim, the decoder's images are the upsampler's low-resolution input."""
    networks = (c.prior.config.model.network, c.upsampler and c.upsampler.config.model.network)
    if networks[0] != "unclip-prior" or networks[1] not in (None, "unclip-upsampler"):
        raise ConfigError(
            f"--cascade {where}: the prior and upsampler runs must have "
            f"model.network unclip-prior and unclip-upsampler, not {networks}"
        )
    dim, decoder_dim = c.prior.image_shape[0], c.decoder.embedding_dim
    if decoder_dim != dim:
        raise ConfigError(
            f"--cascade {where}: the prior draws embeddings of {dim} values, the "
            f"decoder takes embedding_dim={decoder_dim}"
        )
    ours, theirs = (_resolved(run.image_encoder) for run in (c.prior, c.decoder))
    if ours != theirs:
        raise ConfigError(
            f"--cascade {where}: the prior was trained on the embeddings of image encoder "
            f"{ours}, the decoder on those of {theirs}"
        )
    if c.upsampler is not None:
        size = c.upsampler.config.model.unclip.low_size
        low = (c.upsampler.image_shape[0], size, size)
        if tuple(c.decoder.image_shape) != low:
            raise ConfigError(
                f"--cascade {where}: the decoder makes images {c.decoder.image_shape}"
                f", the upsampler takes {low}"
            )


def _resolved(folder: str | None) -> Path | None:
    return Path(folder).expanduser().resolve() if folder is not None else None


def stage_seeds(seeds: list[int], stage: int) -> list[int]:
    """Seed i of stage k (0 prior, 1 decoder, 2 upsampler): 3 * seed + k, distinct per stage."""
    return [3 * seed + stage for seed in seeds]


def encode_prompts(prior: LoadedRun, prompts: list[str], device) -> Condition:
    """The prompts through the prior run's text encoder (model.unclip), as the prior's
    condition: token states, their mask, the pooled embedding."""
    e = prior.config.model.embedding
    text = load_text_encoder(e.text_encoder, e.text_encoder_path).to(device).encode(prompts)
    return Condition(text=text.tokens, text_mask=text.mask, embedding=text.pooled).to(device)


def decode_embeddings(decoder: LoadedRun, embedding: Tensor, seeds: list[int], device) -> Tensor:
    """Images [N, C, H, W] in [-1, 1] from unit image embeddings [N, E], guided at the decoder
    run's sample.guidance against the null (zero) embedding."""
    return sample_images(
        decoder.denoiser,
        image_shape=decoder.image_shape,
        labels=None,
        seeds=seeds,
        sample=decoder.config.sample,
        device=device,
        codec=decoder.codec,
        embeddings=embedding,
    )


@torch.no_grad()
def cascade_batch(c: Cascade, cond: Condition, seeds: list[int], device) -> Tensor:
    """uint8 images of one batch of prompts' conditions, through every stage."""
    prior = c.prior
    x0 = sample_prior(
        prior.denoiser, cond, seeds=stage_seeds(seeds, 0), sample=prior.config.sample, device=device
    )
    images = decode_embeddings(c.decoder, to_unit(x0), stage_seeds(seeds, 1), device)
    if c.upsampler is not None:
        up = c.upsampler
        level = up.config.model.unclip.aug_sample
        images = upsample(
            up.denoiser,
            images.clamp(-1, 1),
            seeds=stage_seeds(seeds, 2),
            sample=up.config.sample,
            level=level,
            device=device,
        )
    return to_uint8(images)


def cascade_images(
    c: Cascade, prompts: list[str], *, num: int, seed: int, batch_size: int, device
) -> Tensor:
    """num uint8 images [num, C, H, W], image i of prompt i % len(prompts) and seed + i."""
    out = []
    for start in range(0, num, batch_size):
        rows = range(start, min(num, start + batch_size))
        cond = encode_prompts(c.prior, [prompts[i % len(prompts)] for i in rows], device)
        out.append(cascade_batch(c, cond, [seed + i for i in rows], device).cpu())
    return torch.cat(out)
