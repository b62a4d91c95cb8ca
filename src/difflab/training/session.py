"""Everything a training run holds, built from a Config: run folder, data, model, optimizer,
EMA, precision, and (when resuming) the state of the newest complete checkpoint."""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor, nn

from difflab.config.plugins import network_plugin
from difflab.config.schema import Config, LatentConfig, ModelConfig
from difflab.core.errors import ConfigError, RunFileError
from difflab.latents import Codec
from difflab.losses import DenoisingLoss
from difflab.parallel.distributed import (
    barrier,
    broadcast_from_main,
    is_distributed,
    is_main,
    setup_device,
)
from difflab.parallel.sharding import data_parallel, load_full_state, shard
from difflab.parameterization import Denoiser
from difflab.runs.checkpoint import Checkpoint, load_latest_checkpoint, require_state
from difflab.runs.files import write_text_atomic
from difflab.runs.frozen import check_trained
from difflab.runs.latents import build_codec, latent_record
from difflab.runs.load import MODEL_INFO
from difflab.runs.rng import restore_rng_state
from difflab.training.batches import DeviceData
from difflab.training.data_source import TrainingData
from difflab.training.ema import EMA
from difflab.training.image_source import ImageSource
from difflab.training.optim import build_optimizer
from difflab.training.posthoc_ema import gamma_from_sigma_rel
from difflab.training.precision import resolve_precision
from difflab.training.step import TrainState


@dataclass
class TrainingRun:
    config: Config
    run_dir: Path
    device: torch.device
    data: TrainingData  # in memory (DeviceData) or a plug-in's (streamed)
    val: DeviceData | None
    state: TrainState
    denoiser: Denoiser  # raw weights
    ema_denoiser: Denoiser
    image_shape: tuple[int, int, int]  # (C, H, W) of the images
    num_classes: int  # 0 when unconditional
    start_step: int
    codec: Codec  # IdentityCodec, or a latent run's VAE
    # (path, reason) of the unreadable training images the loader skipped
    data_skipped: list[tuple[str, str]] = field(default_factory=list)
    # path -> reason of the images a streamed dataset found unreadable so far (it grows)
    streamed_skipped: dict[str, str] = field(default_factory=dict)
    created: bool = False  # this start created run_dir (rank 0): a failed start removes it

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(c, h, w) of what the network sees: the images' shape for pixel diffusion."""
        return self.codec.latent_shape(self.image_shape)


def new_run_dir(config: Config) -> Path:
    """runs/NAME, or runs/NAME-2, -3... when that folder is already used."""
    base = Path(config.run.root) / str(config.run.name)
    path, k = base, 1
    while path.exists() and any(path.iterdir()):
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def write_run_files(run_dir: Path, config: Config, info: dict) -> bool:
    """config.yaml and model.json, each atomically; whether this created run_dir. Called once
    everything that can refuse the run (config, data, a resumed checkpoint) has passed."""
    created = not run_dir.exists()
    try:
        write_text_atomic(run_dir / "config.yaml", config.to_yaml())
        write_text_atomic(run_dir / MODEL_INFO, json.dumps(info, indent=1))
    except RunFileError:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return created


def _sharded(config: Config) -> bool:
    return is_distributed() and config.train.parallel == "fsdp"


def _ema(config: Config, model: nn.Module, device: torch.device) -> EMA:
    """The EMA of model. Under FSDP, which cannot deep-copy a sharded model, the average is a
    copy taken before sharding, sharded the same way."""
    t = config.train
    gamma = None if t.ema_sigma_rel is None else gamma_from_sigma_rel(t.ema_sigma_rel)
    if not _sharded(config):
        return EMA(model, t.ema_decay, t.ema_start, gamma=gamma)
    twin = shard(copy.deepcopy(model), device)
    shard(model, device)
    return EMA(model, t.ema_decay, t.ema_start, module=twin, gamma=gamma)


def _compiled(forward: nn.Module, device: torch.device) -> nn.Module:
    """torch.compile of the module the loss calls; a single CUDA process replays forward and
    backward as CUDA graphs ("reduce-overhead"), as kernel launches from Python leave the GPU
    waiting at small batches (measured in bench/README.md, throughput)."""
    graphs = device.type == "cuda" and not is_distributed()
    return torch.compile(forward, mode="reduce-overhead" if graphs else None)


def build_train_state(
    config: Config, denoiser: Denoiser, device: torch.device, null_text: Tensor | None = None
) -> TrainState:
    """Optimizer, EMA and the (DDP-wrapped, compiled) forward of denoiser's network, which is
    sharded in place under train.parallel 'fsdp'. Also what bench/throughput.py times.
    null_text: the empty prompt's embedding [1, L, D] of a text-conditioned run, what caption
    dropout gives; condition dropout applies to runs with labels or text."""
    t, m = config.train, config.model
    model = denoiser.network
    precision = resolve_precision(t.precision, device)
    precision.prepare(model)
    ema = _ema(config, model, device)
    forward = data_parallel(model, device, t.parallel)
    compile_on = t.compile == "on" or (t.compile == "auto" and device.type == "cuda")
    loss_fn = DenoisingLoss(
        denoiser.schedule, m.parameterization, t.loss_weighting, t.min_snr_gamma
    )
    return TrainState(
        model=model,
        forward=_compiled(forward, device) if compile_on else forward,
        optimizer=build_optimizer(model, t, device),
        ema=ema,
        precision=precision,
        loss_fn=loss_fn,
        grad_clip=t.grad_clip,
        cond_dropout=t.cond_dropout if _conditioned(m, null_text) else 0.0,
        null_text=null_text,
        noise_offset=t.noise_offset,
    )


def _conditioned(m: ModelConfig, null_text: Tensor | None) -> bool:
    """Whether the run has a condition to drop: labels, text or an image embedding."""
    return m.class_conditional or null_text is not None or m.embedding.image_encoder is not None


def _resume(state: TrainState, ckpt: Checkpoint) -> int:
    """Load a checkpoint (full tensors, read by every rank) into state; return its step.
    A model whose tensors differ from the checkpoint's is refused, naming the first; a slim
    checkpoint (runs/frozen.py) loads over the frozen part the model was built with."""
    require_state(ckpt, ("optimizer", "scaler", "rng"))
    full = not check_trained(state.model, *ckpt.weights("model"))
    full_ema = not check_trained(state.ema.module, *ckpt.weights("ema"))
    optimizer = ckpt.state["optimizer"]
    load_full_state(state.model, ckpt.model, state.optimizer, optimizer, strict=full)
    load_full_state(state.ema.module, ckpt.ema, strict=full_ema)
    state.precision.scaler.load_state_dict(ckpt.state["scaler"])
    restore_rng_state(ckpt.state["rng"])
    return ckpt.step


def prepare_run(
    config: Config, trust_checkpoint: bool
) -> tuple[torch.device, Path, Checkpoint | None]:
    """(device, run folder, the checkpoint to resume from or None), torch's CPU threads set."""
    t = config.train
    device = setup_device(t.device)
    if device.type == "cpu" and t.cpu_threads is not None:
        # Small models run faster on one thread: the ops are too small to split.
        torch.set_num_threads(t.cpu_threads)
    root = Path(config.run.root)
    if not t.resume and root.exists() and not root.is_dir():
        raise ConfigError(f"config key 'run.root' ({root}) is not a folder")
    run_dir = Path(t.resume) if t.resume else broadcast_from_main(new_run_dir(config))
    checkpoint = load_latest_checkpoint(run_dir, trust=trust_checkpoint) if t.resume else None
    if checkpoint is not None and checkpoint.step > t.steps:
        raise ConfigError(
            f"config key 'train.steps' is {t.steps} but {run_dir} is resumed from its "
            f"checkpoint at step {checkpoint.step}: set train.steps to {checkpoint.step} or more"
        )
    return device, run_dir, checkpoint


def start_training(
    config: Config,
    denoiser: Denoiser,
    device: torch.device,
    checkpoint: Checkpoint | None,
    null_text: Tensor | None = None,
) -> tuple[TrainState, int, Denoiser]:
    """(train state, start step, EMA denoiser), resumed from checkpoint when there is one."""
    state = build_train_state(config, denoiser, device, null_text)
    start = _resume(state, checkpoint) if checkpoint is not None else 0
    ema_denoiser = Denoiser(state.ema.module, denoiser.schedule, denoiser.parameterization)
    return state, start, ema_denoiser


class RunSource(Protocol):
    """What a kind of run supplies to open_run: its data (read, and refused, before the run
    folder is made), the codec's model.latent, the text condition's null text, its network."""

    latent: LatentConfig  # the codec: build_codec(latent) (IdentityCodec without a VAE)
    class_names: list[str]  # model.json's

    def null_text(self, device: torch.device) -> Tensor | None: ...

    def denoiser(
        self, device: torch.device, codec: Codec, checkpoint: Checkpoint | None
    ) -> tuple[Denoiser, tuple[int, int, int], dict]:
        """(denoiser on device, the images' (C, H, W), the network's data shape)."""
        ...

    def data(self, device: torch.device, codec: Codec) -> tuple[TrainingData, DeviceData | None]:
        """(training data, validation data or None)."""
        ...

    def skipped(self) -> dict:
        """TrainingRun's fields of the unreadable images skipped (data_skipped or
        streamed_skipped)."""
        ...


def open_training_run(config: Config, *, trust_checkpoint: bool = False) -> TrainingRun:
    """Build a run from config, resuming from config.train.resume when set (from its newest
    checkpoint that loads; trust_checkpoint allows a state.pt that needs full pickle). A
    plug-in network's run (a Stable Diffusion fine-tune, streaming its data) is its plug-in's."""
    plugin = network_plugin(config.model.network)
    if plugin is not None:
        return plugin.open_training_run(config, trust_checkpoint=trust_checkpoint)
    return open_run(config, ImageSource(config), trust_checkpoint=trust_checkpoint)


def open_run(config: Config, source: RunSource, *, trust_checkpoint: bool) -> TrainingRun:
    """The run of config with source's data, codec, condition and network: run folder, train
    state (resumed from the newest checkpoint of config.train.resume), config.yaml, model.json."""
    device, run_dir, checkpoint = prepare_run(config, trust_checkpoint)
    codec = build_codec(source.latent, device)
    null_text = source.null_text(device)
    denoiser, image_shape, info = source.denoiser(device, codec, checkpoint)
    state, start, ema_denoiser = start_training(config, denoiser, device, checkpoint, null_text)
    data, val = source.data(device, codec)
    c, size, _ = image_shape
    pixels = {"in_channels": c, "image_size": size, "num_classes": info["num_classes"]}
    record = latent_record(source.latent, codec, image_shape)
    unclip = {k: info[k] for k in ("embedding_dim", "image_encoder") if info.get(k)}
    run_info = {**pixels, "class_names": source.class_names, **record, **unclip}
    created = is_main() and write_run_files(run_dir, config, run_info)
    barrier()
    return TrainingRun(
        config=config,
        run_dir=run_dir,
        device=device,
        data=data,
        val=val,
        state=state,
        denoiser=denoiser,
        ema_denoiser=ema_denoiser,
        image_shape=image_shape,
        num_classes=info["num_classes"],
        start_step=start,
        codec=codec,
        created=created,
        **source.skipped(),
    )
