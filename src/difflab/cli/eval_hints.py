"""`difflab eval RUN --metric hint`: the hint fidelity of a ControlNet run's samples
(evaluation.hint_fidelity). Samples are drawn under --hint-image / --hint-map hints, or by
default under the hints of the run's test split (validation split, else training split),
image i with the hint and label of its image i % M; each is scored against its own hint.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from difflab.cli.sampling_args import hints_from_args
from difflab.config.schema import Config
from difflab.core.errors import ConfigError
from difflab.evaluation import HINT_METRICS, HintSetting, cache_root, hint_fidelity
from difflab.runs.load import LoadedRun
from difflab.sampling.hints import cycled
from difflab.training.batches import dataset_hints
from difflab.training.sample_eval import config_split


def check_hint_run(run: LoadedRun, run_dir: Path) -> None:
    """A one-line ConfigError unless the run is a ControlNet run whose hint has a metric."""
    cn = run.config.model.controlnet
    if cn.base_run is None:
        raise ConfigError(
            f"metric hint needs a ControlNet run: {run_dir} has no model.controlnet.base_run"
        )
    if cn.hint not in HINT_METRICS:
        raise ConfigError(
            f"metric hint: {run_dir}'s hint type {cn.hint!r} has no fidelity metric (metrics "
            f"exist for {', '.join(HINT_METRICS.names())})"
        )


def conditioning(
    args: argparse.Namespace, run: LoadedRun, num: int
) -> tuple[Tensor, list[int] | None]:
    """(hints [M, C_hint, H, W], labels [num] or None) to sample under: --hint-image or
    --hint-map (labels cycled over the classes), else the first `num` images of the run's test
    split with their labels."""
    given = hints_from_args(args, run)
    if given is not None:
        return given, None
    data = run.config.data
    split = data.val_split or data.split
    reference = config_split(run.config, split, run.image_shape[-1])
    hints = dataset_hints(run.config, reference.images, num, reference.maps)
    assert hints is not None  # a ControlNet run (check_hint_run)
    labels = reference.labels[: len(hints)].tolist() if run.num_classes > 0 else None
    return hints, None if labels is None else [labels[i % len(labels)] for i in range(num)]


def targets(hints: Tensor, num: int) -> Tensor:
    """The hint of each of num samples [num, C_hint, H, W]: hint i % M."""
    out = cycled(hints, range(num))
    assert out is not None
    return out


def hint_scores(
    images: Tensor, hints: Tensor, config: Config, args: argparse.Namespace, device: torch.device
) -> dict[str, Any]:
    """hint_fidelity of the samples against their hints, a re-extractor network (segmentation,
    depth) trained on the run's training split and cached under --cache-dir."""
    cn = config.model.controlnet
    setting = HintSetting(
        hint=cn.hint,
        options=dict(cn.hint_options),
        train_split=lambda: config_split(config, config.data.split, images.shape[-1]),
        cache=cache_root(args.cache_dir),
        steps=args.reextractor_steps,
        device=str(device),
    )
    return hint_fidelity(images, hints, setting)
