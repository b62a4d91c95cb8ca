"""export.json of a run (difflab.deploy.spec reads it without torch) and the staleness check: an
export records the checkpoint it was made from, and a newer checkpoint makes it stale."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from difflab.config.schema import SampleConfig
from difflab.core.errors import ConfigError
from difflab.deploy.spec import FORMAT_VERSION, ExportSpec, Grid
from difflab.runs.checkpoint import latest_checkpoint
from difflab.runs.load import MODEL_INFO, LoadedRun
from difflab.samplers import SamplingGrid
from difflab.samplers.options import grid_times, sampler_kwargs
from difflab.schedules.noise import NoiseSchedule


def deploy_grid(schedule: NoiseSchedule, sample: SampleConfig) -> Grid:
    """The grid of sample's sampler settings on the schedule, with the network's time input at
    each time (what the torch sampler feeds the network)."""
    grid = SamplingGrid.build(schedule, grid_times(schedule, sample))
    return Grid(
        t=grid.t.numpy(),
        network_t=schedule.network_time(grid.t).double().numpy(),
        alpha=grid.alpha.numpy(),
        sigma=grid.sigma.numpy(),
    )


def hint_record(run: LoadedRun) -> dict[str, Any] | None:
    """A ControlNet run's hint transform (data.HINTS name and options) and its scale."""
    cn = run.config.model.controlnet
    if cn.base_run is None:
        return None
    return {"transform": cn.hint, "options": dict(cn.hint_options), "scale": cn.scale}


def embedding_record(run: LoadedRun) -> dict[str, Any] | None:
    """An unCLIP decoder's embedding input: its width E, the null embedding that condition
    dropout trained and guidance mixes against (zeros, core.condition), and the image encoder
    that makes its embeddings."""
    if not run.embedding_dim:
        return None
    return {"dim": run.embedding_dim, "null": [0.0] * run.embedding_dim,
            "image_encoder": run.image_encoder}  # fmt: skip


def manifest(
    run_dir: Path, run: LoadedRun, graphs: dict[str, str | None], **export: Any
) -> dict[str, Any]:
    """export.json's content: graphs and inputs, parameterization, schedule, the default
    sampling settings and their grid, shapes, classes, hint transform, embedding input and source
    checkpoint."""
    m, sample = run.config.model, run.config.sample
    info = json.loads((run_dir / MODEL_INFO).read_text())
    inputs = ["x", "t"] + ["labels"] * bool(run.num_classes) + ["hint"] * bool(hint_record(run))
    inputs += ["embedding"] * bool(run.embedding_dim)
    return {
        "format_version": FORMAT_VERSION,
        **export,
        "graphs": graphs,
        "inputs": inputs,
        "null_label": -1,
        "parameterization": m.parameterization,
        "schedule": {
            "name": m.schedule,
            "num_steps": m.num_steps,
            "zero_terminal_snr": m.zero_terminal_snr,
        },  # fmt: skip
        "sample": {
            "sampler": sample.sampler,
            "steps": sample.steps,
            "grid": sample.grid,
            "spacing": sample.spacing,
            "guidance": sample.guidance,
            "options": sampler_kwargs(sample),
        },  # fmt: skip
        "sample_config": asdict(sample),  # the run's whole sample section, for difflab sample
        "grid": deploy_grid(run.denoiser.schedule, sample).to_json(),
        "image_shape": list(run.image_shape),
        "latent_shape": list(run.latent_shape),
        "num_classes": run.num_classes,
        "class_names": info.get("class_names"),
        "hint": hint_record(run),
        "embedding": embedding_record(run),
        "checkpoint": {"step": run.step, "name": latest_name(run_dir)},
    }


def latest_name(run_dir: Path) -> str | None:
    """The folder name of the run's newest complete checkpoint."""
    path = latest_checkpoint(run_dir)
    return None if path is None else path.name


def check_fresh(run_dir: Path, spec: ExportSpec) -> None:
    """ConfigError when the run has a checkpoint newer than the one the export was made from."""
    made_from = spec.data.get("checkpoint", {}).get("name")
    newest = latest_name(run_dir)
    if newest != made_from:
        raise ConfigError(
            f"export {spec.folder} is stale: made from checkpoint {made_from}, the run's newest "
            f"is {newest}; rerun difflab export {run_dir}"
        )
