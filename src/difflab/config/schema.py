"""Typed run configuration: the one place for defaults, validated before anything runs.

A config is built from a recipe (YAML shipped in difflab/recipes), a user YAML file, and
`key.sub=value` overrides, in that order (config/build.py builds and checks it). Unknown keys,
wrong types and impossible values raise ConfigError naming the key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import yaml


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
