"""unCLIP's prior as a network plug-in (`model.network: unclip-prior`, config/plugins.py): a
run whose data are a captioned dataset's (caption encoding, image embedding) pairs, encoded
once by the frozen encoders of model.unclip, and whose network is the `prior` preset."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from difflab.config.build import require
from difflab.config.schema import Config, ModelConfig
from difflab.core.errors import ConfigError
from difflab.data.dataset import check_dataset_options
from difflab.integrations.unclip import pairs as pair_source
from difflab.integrations.unclip.prior_data import PairData
from difflab.latents import Codec
from difflab.networks import presets
from difflab.parallel.distributed import setup_device
from difflab.runs import image_embedding
from difflab.runs.load import build_denoiser
from difflab.training.session import TrainingRun, open_run

PRIOR_NETWORK = "unclip-prior"


def check_config(c: Config) -> None:
    """ConfigError naming the first key of c a prior run cannot take."""
    m, t = c.model, c.train
    presets.check_network_options("prior", m.options)
    check_dataset_options(c.data.dataset, c.data.options)
    encoder = "a LiT or CLIP folder, or 'lit' (the dataset's cached LiT) for a prior"
    require(m.embedding.image_encoder is not None, "model.embedding.image_encoder", encoder, None)
    for key, value, expected in [
        ("model.class_conditional", m.class_conditional, False),
        ("model.latent.vae", m.latent.vae, None),
        ("model.controlnet.base_run", m.controlnet.base_run, None),
        ("model.pretrained", m.pretrained, None),
        ("train.sample_every", t.sample_every, 0),  # a prior draws embeddings, not images
        ("train.eval_every", t.eval_every, 0),
    ]:
        require(value == expected, key, f"{expected!r} with model.network {PRIOR_NETWORK!r}", value)


def build_network(model: ModelConfig, in_channels: int, image_size: int) -> nn.Module:
    """The `prior` preset over embeddings of in_channels values (image_size 1), with
    model.options."""
    options = dict(model.options)
    return presets.build_network(
        "prior", in_channels=in_channels, image_size=1, num_classes=None, options=options
    )


class PriorSource:
    """training.session.RunSource of a prior: the pairs of data.split (and data.val_split for
    validation), encoded when the source is made, so bad data or encoders stop the run before
    its folder exists."""

    def __init__(self, config: Config, device: torch.device) -> None:
        self.config = config
        self.latent = config.model.latent
        self.class_names: list[str] = []
        d, t = config.data, config.train
        self.encoder = image_embedding.shared_encoder_folder(config)  # ('lit': cached LiT)
        self.pairs = pair_source.load_pairs(config, d.split, device, self.encoder)
        pair_source.check_tokens(config, self.pairs)
        use_val = d.val_split is not None and t.val_every > 0
        val = pair_source.load_pairs(config, d.val_split, device, self.encoder) if use_val else None
        self.val = val

    def null_text(self, device: torch.device) -> None:
        return None  # dropped text is no text: Condition.null (zeros, all tokens masked)

    def denoiser(self, device: torch.device, codec: Codec, checkpoint):
        dim = self.pairs.image.shape[1]
        info = {"in_channels": dim, "image_size": 1, "num_classes": 0}
        torch.manual_seed(self.config.train.seed)
        denoiser = build_denoiser(self.config, **info).to(device)
        info.update(embedding_dim=dim, image_encoder=str(self.encoder))  # model.json's
        return denoiser, (dim, 1, 1), info

    def data(self, device: torch.device, codec: Codec) -> tuple[PairData, PairData | None]:
        t = self.config.train
        data = PairData(self.pairs, batch_size=t.batch_size, seed=t.seed, device=device)
        val = self.val
        if val is None:
            return data, None
        size = min(len(val), 256)
        return data, PairData(val, batch_size=size, seed=t.seed, device=device, train=False)

    def skipped(self) -> dict:
        return {"data_skipped": []}


def open_training_run(config: Config, *, trust_checkpoint: bool = False) -> TrainingRun:
    """The prior's run; its text is dropped with train.cond_dropout (a run with
    model.embedding drops its condition), null text being no text, as guided_prior samples."""
    source = PriorSource(config, setup_device(config.train.device))
    return open_run(config, source, trust_checkpoint=trust_checkpoint)


def grid_draw(run: TrainingRun, rows: range):
    raise ConfigError(f"model.network {PRIOR_NETWORK!r} has no sample grids (train.sample_every 0)")


def prompt_images(run, prompts, **_: Any):
    raise ConfigError(
        f"a {PRIOR_NETWORK} run draws image embeddings, not images: sample it in a cascade "
        "(difflab sample --prompt TEXT --cascade FOLDER)"
    )


def report_rows(config: dict[str, Any]) -> list[tuple[str, str]]:
    """The rows report.html's "kind of run" table adds for a prior's config.yaml (as parsed)."""
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    e = model.get("embedding") if isinstance(model.get("embedding"), dict) else {}
    encoders = f"text {e.get('text_encoder')}, image {e.get('image_encoder')}"
    return [("unCLIP prior", f"image embeddings from captions ({encoders})")]


def conditioning(guidance: Any) -> str:
    """The conditioning report.html names for a prior sampled with guidance."""
    return f"text (caption encodings), guidance {guidance}"
