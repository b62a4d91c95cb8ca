"""Typed run configuration: the one place for defaults, validated before anything runs.

A config is built from a recipe (YAML shipped in difflab/recipes), a user YAML file, and
`key.sub=value` overrides, in that order. Unknown keys, wrong types and impossible values
raise ConfigError naming the key.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import yaml

from difflab.config.parsing import from_dict, set_override
from difflab.config.plugins import NETWORK_PLUGINS, network_plugin
from difflab.core.errors import ConfigError, DifflabError
from difflab.data.dataset import check_dataset_options
from difflab.data.hints import HINTS, make_hint
from difflab.networks import NETWORKS
from difflab.networks.presets import check_network_options
from difflab.samplers import SAMPLERS
from difflab.samplers.options import sampler_kwargs
from difflab.schedules import GRIDS

MAX_CPU_THREADS = 1024  # more threads than any CPU has cores: each costs memory and a stack


@dataclass
class DataConfig:
    dataset: str = "digits"
    root: str | None = None
    split: str = "train"
    val_split: str | None = "test"  # held-out split for validation loss; None turns it off
    image_size: int | None = None  # resize to this side; None keeps the dataset's size
    channels: int | None = None  # 3 repeats grey images to RGB (an RGB VAE); None: as loaded
    flip: bool = False  # random horizontal flips
    download: bool = False
    max_bad_fraction: float = 0.01
    options: dict[str, Any] = field(default_factory=dict)  # the dataset loader's own keywords
    num_workers: int = 4  # DataLoader workers of a streamed dataset (coco); 0: in the loop
    caption_column: str = "text"  # the caption's column of an image folder's metadata.jsonl
    crop: Literal["center", "random"] = "center"  # square crop of a streamed (captioned) image
    hints: str | None = None  # a ControlNet run's ready-made hint maps, paired by file name


@dataclass
class ControlNetConfig:
    """Train a ControlNet on a trained run (a UNet or DiT): its EMA weights are the frozen
    base. model.network sd-controlnet reads hint, hint_options and scale, its base the UNet
    of model.pretrained (base_run stays null)."""

    base_run: str | None = None  # the base run's folder; None: no ControlNet
    hint: str = "blur"  # a hint transform from difflab.data.HINTS, made from each image
    hint_options: dict[str, Any] = field(default_factory=dict)  # that transform's fields
    scale: float = 1.0  # multiplies the ControlNet's residuals


@dataclass
class LatentConfig:
    """Latent diffusion (Rombach et al. 2022): the network works on a frozen VAE's latents of
    the images. Each split is encoded once when training starts; with data.flip both
    orientations of every image are encoded and each sample picks one at random."""

    vae: str | None = None  # local diffusers VAE or pipeline folder; None: pixel diffusion
    scaling_factor: float | None = None  # z = (E(x) - shift) * scaling; None: the VAE config's
    shift_factor: float | None = None  # None: the VAE config's (0 when it has none)
    sample_posterior: bool = False  # encode a posterior sample (drawn once), not its mean


@dataclass
class EmbeddingConfig:
    """unCLIP's decoder (Ramesh et al. 2022): the network is conditioned on the image
    embedding of each training image (cond.embedding, computed once by a frozen encoder)."""

    image_encoder: str | None = None  # a LiT or CLIP folder, or 'lit' (cached); None: off
    text_encoder: str = "minilm"  # the locked text tower of image_encoder 'lit'
    text_encoder_path: str | None = None  # its local folder (text_encoder 'clip')


@dataclass
class LoraConfig:
    """LoRA (Hu et al. 2021) of a Stable Diffusion UNet: W x + (alpha / rank) B A x on the
    target projections; only A and B train. rank 0 trains the whole UNet. text_encoder: the
    CLIP text encoder's attention projections get adapters of the same rank and alpha too."""

    rank: int = 0  # 0: no adapter (a full fine-tune)
    alpha: float | None = None  # None: rank (a scale of 1, as diffusers' LoRA script)
    # module names (suffixes) of the UNet that get adapters: diffusers' attention projections
    targets: list[str] = field(default_factory=lambda: ["to_k", "to_q", "to_v", "to_out.0"])
    text_encoder: bool = False  # also adapt q_proj, k_proj, v_proj, out_proj of the text encoder


@dataclass
class UnclipConfig:
    """unCLIP's upsampler (Ramesh et al. 2022): its low-resolution input and that input's
    noise-conditioning augmentation (Ho et al. 2022, cascaded diffusion). (A prior's encoders
    are model.embedding's, the decoder's.)"""

    low_size: int = 16  # the upsampler's input side (the decoder's images)
    aug_max: float = 0.5  # training: the low-res input noised to s ~ U[0, aug_max] (s in [0, 1])
    aug_sample: float = 0.1  # sampling: the fixed augmentation level s


@dataclass
class ModelConfig:
    network: str = "unet-tiny"
    options: dict[str, Any] = field(default_factory=dict)  # passed to build_network
    parameterization: Literal["eps", "x0", "v"] = "eps"
    schedule: Literal["linear", "scaled-linear", "cosine", "sigmoid"] = "cosine"
    num_steps: int | None = 1000  # None: continuous time
    zero_terminal_snr: bool = False
    class_conditional: bool = True
    controlnet: ControlNetConfig = field(default_factory=ControlNetConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)
    # Stable Diffusion fine-tuning: a local diffusers pipeline folder whose UNet is the network
    # (model.network 'sd-unet'), VAE the codec and text encoder the frozen condition
    pretrained: str | None = None
    # train model.parameterization though model.pretrained's scheduler says another (diffusers'
    # --prediction_type); the exported scheduler then says the run's
    override_prediction_type: bool = False
    lora: LoraConfig = field(default_factory=LoraConfig)  # with model.pretrained
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)  # unCLIP's decoder
    unclip: UnclipConfig = field(default_factory=UnclipConfig)  # networks unclip-*


@dataclass
class TrainConfig:
    steps: int = 2000
    batch_size: int = 64  # per micro-step, all processes together; a step sees x grad_accum
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)  # lr_schedule one-cycle cycles beta1 (0.95-0.85)
    weight_decay: float = 0.0
    adam_eps: float = 1e-8
    lr_schedule: Literal["constant", "cosine", "one-cycle"] = "constant"
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    # This many skipped (NaN/Inf) steps in a row stop training, seen at the next log record or
    # checkpoint/sample/eval boundary (skips decided on the device are not read every step).
    max_nonfinite_steps: int = 20
    grad_accum: int = 1
    # auto: bf16 autocast on CUDA, fp32 on CPU; fp64 computes in float64 to debug numerics
    precision: Literal["auto", "fp32", "bf16", "fp16", "fp64"] = "auto"
    ema_decay: float = 0.999
    ema_start: int = 0
    # power-function EMA of this relative width (EDM2; replaces ema_decay); None: fixed decay
    ema_sigma_rel: float | None = None
    ema_snapshot_every: int = 0  # EMA snapshots for `difflab ema` (post-hoc EMA); 0: none
    cond_dropout: float = 0.1
    noise_offset: float = 0.0  # eps += noise_offset * N(0, 1) per sample and channel; 0: off
    gradient_checkpointing: bool = False  # recompute activations in backward (model.pretrained)
    loss_weighting: Literal["uniform", "min-snr"] = "uniform"
    min_snr_gamma: float = 5.0
    seed: int = 0
    compile: Literal["auto", "on", "off"] = "auto"
    log_every: int = 50
    sample_every: int = 500  # 0 turns periodic sample grids off
    val_every: int = 500  # 0 turns validation off
    val_images: int | None = 1000  # validation uses the split's first N images; None: all
    checkpoint_every: int = 1000  # a checkpoint is always written at the end
    eval_every: int = 0  # FID and accuracy of EMA samples every N steps; 0 turns it off
    eval_samples: int = 1000  # samples per in-training evaluation
    eval_classifier: str | None = None  # classifier folder; None: trained (and cached) at start
    keep_checkpoints: int = 2
    device: Literal["auto", "cpu", "cuda"] = "auto"
    parallel: Literal["ddp", "fsdp"] = "ddp"  # under torchrun: replicate or shard the weights
    # torch intra-op threads on CPU; None keeps the process's (the difflab command: 1, or
    # OMP_NUM_THREADS; see difflab.cli.cpu_threads)
    cpu_threads: int | None = None
    resume: str | None = None  # run folder to continue
    progress: bool = True  # tqdm bar (shown only on a terminal)


@dataclass
class SampleConfig:
    """How to sample: the defaults of `difflab sample`, sampling.generate and training grids."""

    sampler: str = "ddim"
    steps: int = 50
    grid: str = "uniform"
    guidance: float = 1.0  # the recipe's recommended classifier-free guidance scale
    eta: float = 0.0  # DDIM's noise; samplers without an eta option ignore it
    sampler_options: dict[str, float] = field(default_factory=dict)  # e.g. {s_churn: 5}
    spacing: Literal["leading", "trailing", "linspace"] = "trailing"  # uniform grid, discrete
    rho: float = 7.0  # karras grid
    sigma_max: float | None = None  # karras grid's largest s = sigma / alpha (EDM: 80); None: t_max
    # x0 thresholding; None: static with classifier guidance, else off
    threshold: Literal["dynamic", "static", "off"] | None = None
    threshold_percentile: float = 0.995  # dynamic thresholding's quantile
    # folder of a noisy classifier for classifier guidance (generate, `difflab sample`; the
    # periodic training grids leave it out)
    classifier: str | None = None
    classifier_scale: float = 1.0  # classifier guidance scale (with `classifier`)
    num: int = 40  # images in each periodic sample grid
    # a Stable Diffusion run's periodic grid prompts, cycled over its sample.num images
    prompts: list[str] = field(default_factory=list)
    negative_prompt: str = ""  # what guidance steers a Stable Diffusion run away from
    # unCLIP's prior: embeddings drawn per caption, the one closest to the text kept (paper: 2)
    prior_candidates: int = 1


@dataclass
class RunConfig:
    root: str = "runs"
    name: str | None = None  # defaults to the recipe's (or file's) name
    wandb: Literal["off", "online", "offline"] = "off"  # W&B logging (the wandb extra)
    wandb_project: str = "difflab"


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["train"]["betas"] = list(self.train.betas)
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def build_config(data: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """A validated Config from a nested dict (recipe or file) plus `key.sub=value` overrides."""
    merged = _deep_copy(data)
    _drop_other_network_options(merged, overrides)
    _one_ema_kind(merged, overrides)
    for item in overrides:
        set_override(merged, item)
    config = from_dict(Config, merged, prefix="")
    _check_values(config)
    return config


def _drop_other_network_options(data: dict[str, Any], overrides: Sequence[str]) -> None:
    """An override that switches model.network drops the file's model.options (written for
    its network) with a warning: the new network starts from its own defaults, and options
    given as overrides apply to it."""
    probe: dict[str, Any] = {}
    for item in overrides:
        if item.startswith("model.network="):
            set_override(probe, item)
    model = data.get("model")
    if not probe or not isinstance(model, dict) or not model.get("options"):
        return
    old, new = model.get("network", ModelConfig.network), probe["model"]["network"]
    if new != old and new in NETWORKS:  # an unknown network is refused by name later
        dropped = model.pop("options")
        warnings.warn(
            f"model.network={new} replaces {old}: its model.options {dropped} are dropped "
            f"(set model.options.KEY=VALUE for {new})",
            stacklevel=3,
        )


def _one_ema_kind(data: dict[str, Any], overrides: Sequence[str]) -> None:
    """train.ema_decay (fixed) and train.ema_sigma_rel (power function) are alternatives: an
    override of one drops the file's other (in a file, or two overrides, ema_sigma_rel wins)."""
    train = data.get("train")
    if not isinstance(train, dict):
        return
    given = {item.split("=", 1)[0] for item in overrides}
    for key, other in (("ema_decay", "ema_sigma_rel"), ("ema_sigma_rel", "ema_decay")):
        if f"train.{key}" in given and f"train.{other}" not in given:
            train.pop(other, None)


def _deep_copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}


def require(ok: bool, key: str, constraint: str, value: Any) -> None:
    """ConfigError "config key 'KEY' must be CONSTRAINT, got VALUE" unless ok."""
    if not ok:
        raise ConfigError(f"config key '{key}' must be {constraint}, got {value!r}")


_require = require


def _check_values(c: Config) -> None:
    """Impossible values, each named by its key and the constraint it breaks."""
    t, m, s = c.train, c.model, c.sample
    positive = [("train.steps", t.steps), ("train.batch_size", t.batch_size)]
    positive += [("train.lr", t.lr), ("train.adam_eps", t.adam_eps)]
    positive += [("train.log_every", t.log_every), ("train.keep_checkpoints", t.keep_checkpoints)]
    positive += [("train.min_snr_gamma", t.min_snr_gamma), ("sample.num", s.num)]
    for key, value in positive:
        _require(value > 0, key, "> 0", value)
    for key, value in [
        ("train.sample_every", t.sample_every),
        ("train.val_every", t.val_every),
        ("train.checkpoint_every", t.checkpoint_every),
        ("train.eval_every", t.eval_every),
        ("train.warmup_steps", t.warmup_steps),
        ("train.ema_start", t.ema_start),
        ("train.weight_decay", t.weight_decay),
    ]:
        _require(value >= 0, key, ">= 0", value)
    threads = t.cpu_threads
    limit = f"from 1 to {MAX_CPU_THREADS} or null"
    _require(
        threads is None or 1 <= threads <= MAX_CPU_THREADS, "train.cpu_threads", limit, threads
    )
    val = t.val_images
    _require(val is None or val >= 1, "train.val_images", ">= 1 or null", val)
    name = c.run.name
    plain = name is None or (name not in ("", ".", "..") and "/" not in name and "\\" not in name)
    _require(plain, "run.name", "a folder name (no '/', not '.' or '..')", name)
    _require(t.eval_samples >= 2, "train.eval_samples", ">= 2", t.eval_samples)
    _require(t.grad_accum >= 1, "train.grad_accum", ">= 1", t.grad_accum)
    nonfinite = t.max_nonfinite_steps
    _require(nonfinite >= 1, "train.max_nonfinite_steps", ">= 1", nonfinite)
    _require(0 <= t.ema_decay < 1, "train.ema_decay", "in [0, 1)", t.ema_decay)
    sigma_rel = t.ema_sigma_rel
    _require(
        sigma_rel is None or 0 < sigma_rel < 0.3, "train.ema_sigma_rel", "in (0, 0.3)", sigma_rel
    )
    _require(t.ema_snapshot_every >= 0, "train.ema_snapshot_every", ">= 0", t.ema_snapshot_every)
    _require(
        t.ema_snapshot_every == 0 or sigma_rel is not None,
        "train.ema_snapshot_every",
        "0 without train.ema_sigma_rel (snapshots are of the power-function EMA)",
        t.ema_snapshot_every,
    )
    _require(0 <= t.cond_dropout <= 1, "train.cond_dropout", "in [0, 1]", t.cond_dropout)
    _require(t.noise_offset >= 0, "train.noise_offset", ">= 0", t.noise_offset)
    for i, b in enumerate(t.betas):
        _require(0 <= b < 1, f"train.betas[{i}]", "in [0, 1)", b)
    _require(t.grad_clip is None or t.grad_clip > 0, "train.grad_clip", "> 0 or null", t.grad_clip)
    _require(
        m.num_steps is None or m.num_steps >= 2, "model.num_steps", ">= 2 or null", m.num_steps
    )
    _require(
        not (m.parameterization == "eps" and m.zero_terminal_snr),
        "model.zero_terminal_snr",
        "false with model.parameterization 'eps' (eps cannot be predicted at zero SNR; use v)",
        m.zero_terminal_snr,
    )
    _require(
        c.data.image_size is None or c.data.image_size > 0,
        "data.image_size",
        "> 0 or null",
        c.data.image_size,
    )
    networks = [*NETWORKS.names(), *NETWORK_PLUGINS.names()]
    _require(m.network in networks, "model.network", f"one of {networks}", m.network)
    check_network(c)
    check_controlnet(m.controlnet)
    plugin = network_plugin(m.network)
    has_cn = m.controlnet.base_run is not None or getattr(plugin, "CONTROLNET", False)
    _require(
        has_cn or c.data.hints is None, "data.hints", "null without a ControlNet", c.data.hints
    )
    check_latent(m)
    check_sample(s)
    _require(
        not (t.parallel == "fsdp" and t.precision == "fp16"),
        "train.precision",
        "'fp32', 'bf16', 'fp64' or 'auto' with train.parallel 'fsdp' (no sharded fp16 scaler)",
        t.precision,
    )
    frac = c.data.max_bad_fraction
    _require(0 <= frac <= 1, "data.max_bad_fraction", "in [0, 1]", frac)
    require_wandb(c.run.wandb)


def check_network(c: Config) -> None:
    """A plug-in network checks the config itself (its `check_config`, config/plugins.py); a
    preset's model.options and data.options are options of the network and dataset, named as
    `model.options.KEY`, and it takes no model.pretrained or sample.prompts (plug-ins' keys)."""
    m, d = c.model, c.data
    plugin = network_plugin(m.network)
    if plugin is not None:
        plugin.check_config(c)
        return
    check_network_options(m.network, m.options)
    check_dataset_options(d.dataset, d.options)
    alone = "null with model.controlnet.base_run (a ControlNet keeps its base's condition)"
    encoder, key = m.embedding.image_encoder, "model.embedding.image_encoder"
    _require(encoder is None or m.controlnet.base_run is None, key, alone, encoder)
    plugins = f"one of {NETWORK_PLUGINS.names()} with model.pretrained"
    _require(m.pretrained is None, "model.network", plugins, m.network)
    no_text = "empty without model.pretrained (a preset network samples from labels, not text)"
    _require(not c.sample.prompts, "sample.prompts", no_text, c.sample.prompts)
    negative = c.sample.negative_prompt
    _require(not negative, "sample.negative_prompt", no_text, negative)
    _require(m.lora.rank >= 0, "model.lora.rank", ">= 0 (0: no LoRA)", m.lora.rank)
    no_lora = "0 without model.pretrained (LoRA adapts a Stable Diffusion UNet)"
    _require(m.lora.rank == 0, "model.lora.rank", no_lora, m.lora.rank)
    whole = "'center' without model.pretrained (in-memory datasets are resized whole)"
    _require(c.data.crop == "center", "data.crop", whole, c.data.crop)
    for key, value in [
        ("train.gradient_checkpointing", c.train.gradient_checkpointing),
        ("model.override_prediction_type", m.override_prediction_type),
        ("model.lora.text_encoder", m.lora.text_encoder),
    ]:
        _require(not value, key, "false without model.pretrained", value)


def check_controlnet(cn: ControlNetConfig) -> None:
    """The hint transform exists and takes its options (Canny: OpenCV is installed)."""
    _require(cn.hint in HINTS, "model.controlnet.hint", f"one of {HINTS.names()}", cn.hint)
    _require(cn.scale >= 0, "model.controlnet.scale", ">= 0", cn.scale)
    try:
        make_hint(cn.hint, **cn.hint_options)
    except DifflabError as e:  # ConfigError, or OpenCV missing for Canny
        raise ConfigError(f"config key 'model.controlnet.hint_options': {e}") from None


def check_latent(m: ModelConfig) -> None:
    """Factors that can scale latents."""
    scale = m.latent.scaling_factor
    _require(scale is None or scale > 0, "model.latent.scaling_factor", "> 0 or null", scale)


def check_sample(s: SampleConfig) -> None:
    """Impossible sampling settings (also run on settings given to sampling.generate)."""
    _require(s.steps > 0, "sample.steps", "> 0", s.steps)
    _require(s.guidance >= 0, "sample.guidance", ">= 0", s.guidance)
    _require(0 <= s.eta <= 1, "sample.eta", "in [0, 1]", s.eta)
    _require(s.rho > 0, "sample.rho", "> 0", s.rho)
    _require(s.sigma_max is None or s.sigma_max > 0, "sample.sigma_max", "> 0 or null", s.sigma_max)
    pct = s.threshold_percentile
    _require(0 < pct <= 1, "sample.threshold_percentile", "in (0, 1]", pct)
    _require(s.classifier_scale >= 0, "sample.classifier_scale", ">= 0", s.classifier_scale)
    _require(s.prior_candidates >= 1, "sample.prior_candidates", ">= 1", s.prior_candidates)
    _require(s.sampler in SAMPLERS, "sample.sampler", f"one of {SAMPLERS.names()}", s.sampler)
    _require(s.grid in GRIDS, "sample.grid", f"one of {GRIDS.names()}", s.grid)
    sampler_kwargs(s)


def require_wandb(mode: str) -> None:
    """ConfigError before anything runs when W&B logging is asked for but not installed."""
    if mode != "off" and importlib.util.find_spec("wandb") is None:
        raise ConfigError(
            f"config key 'run.wandb' is {mode!r} but wandb is not installed: "
            "pip install 'difflab[wandb]'"
        )
