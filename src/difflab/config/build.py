"""Building a Config: a nested dict (recipe or file) plus `key.sub=value` overrides, parsed and
checked; every impossible value raises ConfigError naming its key, the constraint it breaks and
the value, before anything runs."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence
from typing import Any

from difflab.config.parsing import from_dict, set_override
from difflab.config.plugins import NETWORK_PLUGINS, network_plugin
from difflab.config.schema import Config, ControlNetConfig, ModelConfig, SampleConfig
from difflab.core.errors import ConfigError, DifflabError
from difflab.data.dataset import check_dataset_options
from difflab.data.hints import HINTS, make_hint
from difflab.networks import NETWORKS
from difflab.networks.presets import check_network_options
from difflab.samplers import SAMPLERS
from difflab.samplers.options import sampler_kwargs
from difflab.schedules import GRIDS

MAX_CPU_THREADS = 1024  # more threads than any CPU has cores: each costs memory and a stack


def build_config(data: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """A validated Config from a nested dict (recipe or file) plus `key.sub=value` overrides."""
    merged = _deep_copy(data)
    _drop_other_network_options(merged, overrides)
    _one_ema_kind(merged, overrides)
    for item in overrides:
        set_override(merged, item)
    config = from_dict(Config, merged, prefix="")
    check_values(config)
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


def check_values(c: Config) -> None:
    """Impossible values, each named by its key and the constraint it breaks."""
    t, m, s = c.train, c.model, c.sample
    positive = [("train.steps", t.steps), ("train.batch_size", t.batch_size)]
    positive += [("train.lr", t.lr), ("train.adam_eps", t.adam_eps)]
    positive += [("train.log_every", t.log_every), ("train.keep_checkpoints", t.keep_checkpoints)]
    positive += [("train.min_snr_gamma", t.min_snr_gamma), ("sample.num", s.num)]
    for key, value in positive:
        require(value > 0, key, "> 0", value)
    for key, value in [
        ("train.sample_every", t.sample_every),
        ("train.val_every", t.val_every),
        ("train.checkpoint_every", t.checkpoint_every),
        ("train.eval_every", t.eval_every),
        ("train.warmup_steps", t.warmup_steps),
        ("train.ema_start", t.ema_start),
        ("train.weight_decay", t.weight_decay),
    ]:
        require(value >= 0, key, ">= 0", value)
    threads = t.cpu_threads
    limit = f"from 1 to {MAX_CPU_THREADS} or null"
    require(threads is None or 1 <= threads <= MAX_CPU_THREADS, "train.cpu_threads", limit, threads)
    val = t.val_images
    require(val is None or val >= 1, "train.val_images", ">= 1 or null", val)
    name = c.run.name
    plain = name is None or (name not in ("", ".", "..") and "/" not in name and "\\" not in name)
    require(plain, "run.name", "a folder name (no '/', not '.' or '..')", name)
    require(t.eval_samples >= 2, "train.eval_samples", ">= 2", t.eval_samples)
    require(t.grad_accum >= 1, "train.grad_accum", ">= 1", t.grad_accum)
    nonfinite = t.max_nonfinite_steps
    require(nonfinite >= 1, "train.max_nonfinite_steps", ">= 1", nonfinite)
    require(0 <= t.ema_decay < 1, "train.ema_decay", "in [0, 1)", t.ema_decay)
    sigma_rel = t.ema_sigma_rel
    require(
        sigma_rel is None or 0 < sigma_rel < 0.3, "train.ema_sigma_rel", "in (0, 0.3)", sigma_rel
    )
    require(t.ema_snapshot_every >= 0, "train.ema_snapshot_every", ">= 0", t.ema_snapshot_every)
    require(
        t.ema_snapshot_every == 0 or sigma_rel is not None,
        "train.ema_snapshot_every",
        "0 without train.ema_sigma_rel (snapshots are of the power-function EMA)",
        t.ema_snapshot_every,
    )
    require(0 <= t.cond_dropout <= 1, "train.cond_dropout", "in [0, 1]", t.cond_dropout)
    require(t.noise_offset >= 0, "train.noise_offset", ">= 0", t.noise_offset)
    for i, b in enumerate(t.betas):
        require(0 <= b < 1, f"train.betas[{i}]", "in [0, 1)", b)
    require(t.grad_clip is None or t.grad_clip > 0, "train.grad_clip", "> 0 or null", t.grad_clip)
    require(m.num_steps is None or m.num_steps >= 2, "model.num_steps", ">= 2 or null", m.num_steps)
    require(
        not (m.parameterization == "eps" and m.zero_terminal_snr),
        "model.zero_terminal_snr",
        "false with model.parameterization 'eps' (eps cannot be predicted at zero SNR; use v)",
        m.zero_terminal_snr,
    )
    require(
        c.data.image_size is None or c.data.image_size > 0,
        "data.image_size",
        "> 0 or null",
        c.data.image_size,
    )
    networks = [*NETWORKS.names(), *NETWORK_PLUGINS.names()]
    require(m.network in networks, "model.network", f"one of {networks}", m.network)
    check_network(c)
    check_controlnet(m.controlnet)
    plugin = network_plugin(m.network)
    has_cn = m.controlnet.base_run is not None or getattr(plugin, "CONTROLNET", False)
    require(has_cn or c.data.hints is None, "data.hints", "null without a ControlNet", c.data.hints)
    check_latent(m)
    check_sample(s)
    require(
        not (t.parallel == "fsdp" and t.precision == "fp16"),
        "train.precision",
        "'fp32', 'bf16', 'fp64' or 'auto' with train.parallel 'fsdp' (no sharded fp16 scaler)",
        t.precision,
    )
    frac = c.data.max_bad_fraction
    require(0 <= frac <= 1, "data.max_bad_fraction", "in [0, 1]", frac)
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
    require(encoder is None or m.controlnet.base_run is None, key, alone, encoder)
    plugins = f"one of {NETWORK_PLUGINS.names()} with model.pretrained"
    require(m.pretrained is None, "model.network", plugins, m.network)
    no_text = "empty without model.pretrained (a preset network samples from labels, not text)"
    require(not c.sample.prompts, "sample.prompts", no_text, c.sample.prompts)
    negative = c.sample.negative_prompt
    require(not negative, "sample.negative_prompt", no_text, negative)
    require(m.lora.rank >= 0, "model.lora.rank", ">= 0 (0: no LoRA)", m.lora.rank)
    no_lora = "0 without model.pretrained (LoRA adapts a Stable Diffusion UNet)"
    require(m.lora.rank == 0, "model.lora.rank", no_lora, m.lora.rank)
    whole = "'center' without model.pretrained (in-memory datasets are resized whole)"
    require(c.data.crop == "center", "data.crop", whole, c.data.crop)
    for key, value in [
        ("train.gradient_checkpointing", c.train.gradient_checkpointing),
        ("model.override_prediction_type", m.override_prediction_type),
        ("model.lora.text_encoder", m.lora.text_encoder),
    ]:
        require(not value, key, "false without model.pretrained", value)


def check_controlnet(cn: ControlNetConfig) -> None:
    """The hint transform exists and takes its options (Canny: OpenCV is installed)."""
    require(cn.hint in HINTS, "model.controlnet.hint", f"one of {HINTS.names()}", cn.hint)
    require(cn.scale >= 0, "model.controlnet.scale", ">= 0", cn.scale)
    try:
        make_hint(cn.hint, **cn.hint_options)
    except DifflabError as e:  # ConfigError, or OpenCV missing for Canny
        raise ConfigError(f"config key 'model.controlnet.hint_options': {e}") from None


def check_latent(m: ModelConfig) -> None:
    """Factors that can scale latents."""
    scale = m.latent.scaling_factor
    require(scale is None or scale > 0, "model.latent.scaling_factor", "> 0 or null", scale)


def check_sample(s: SampleConfig) -> None:
    """Impossible sampling settings (also run on settings given to sampling.generate)."""
    require(s.steps > 0, "sample.steps", "> 0", s.steps)
    require(s.guidance >= 0, "sample.guidance", ">= 0", s.guidance)
    require(0 <= s.eta <= 1, "sample.eta", "in [0, 1]", s.eta)
    require(s.rho > 0, "sample.rho", "> 0", s.rho)
    require(s.sigma_max is None or s.sigma_max > 0, "sample.sigma_max", "> 0 or null", s.sigma_max)
    pct = s.threshold_percentile
    require(0 < pct <= 1, "sample.threshold_percentile", "in (0, 1]", pct)
    require(s.classifier_scale >= 0, "sample.classifier_scale", ">= 0", s.classifier_scale)
    require(s.prior_candidates >= 1, "sample.prior_candidates", ">= 1", s.prior_candidates)
    require(s.sampler in SAMPLERS, "sample.sampler", f"one of {SAMPLERS.names()}", s.sampler)
    require(s.grid in GRIDS, "sample.grid", f"one of {GRIDS.names()}", s.grid)
    sampler_kwargs(s)


def require_wandb(mode: str) -> None:
    """ConfigError before anything runs when W&B logging is asked for but not installed."""
    if mode != "off" and importlib.util.find_spec("wandb") is None:
        raise ConfigError(
            f"config key 'run.wandb' is {mode!r} but wandb is not installed: "
            "pip install 'difflab[wandb]'"
        )
