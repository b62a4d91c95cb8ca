"""`difflab sample RUN|EXPORT --backend onnxruntime|openvino --prompt TEXT` of a Stable Diffusion
export: difflab.deploy.text's PromptPipeline from the per-image noise of `--backend torch`
(seed + i), with the run's sampling settings (config.yaml, or the export's export.json when
given an export folder) and the sampling and prompt flags, so it draws torch's images."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from difflab.cli.deploy_export import (
    checked_uint8,
    deploy_sample_config,
    noise_batches,
    spec_schedule,
)
from difflab.cli.prompt_args import image_size, prompts_of, with_negative_prompt
from difflab.config.build import build_config
from difflab.config.recipes import read_yaml
from difflab.config.schema import SampleConfig
from difflab.core.errors import ConfigError
from difflab.deploy import ExportSpec
from difflab.deploy.text import PromptPipeline
from difflab.export import deploy_grid
from difflab.samplers.options import sampler_kwargs


def base_sample(spec: ExportSpec, run_dir: Path | None) -> SampleConfig:
    """The run's sample section: its config.yaml, else the one export.json recorded."""
    if run_dir is not None:
        return build_config(read_yaml(run_dir / "config.yaml")).sample
    if "sample_config" not in spec.data:
        raise ConfigError(f"{spec.folder}/export.json has no sample_config; rerun difflab export")
    return SampleConfig(**spec.data["sample_config"])


def deployed_prompt_images(
    args: argparse.Namespace, labels: list[int] | None, spec: ExportSpec, run_dir: Path | None
) -> torch.Tensor:
    """uint8 images [num, 3, H, W]: image i from prompt i % M and seed + i."""
    if labels is not None:
        raise ConfigError("--labels does not apply to a Stable Diffusion run; use --prompt")
    if args.variations is not None or args.hint_image is not None:
        raise ConfigError("a Stable Diffusion export takes --prompt, not --variations or hints")
    shape = tuple(spec.data["image_shape"])
    if image_size(args, shape[1:]) != shape[1:]:
        raise ConfigError(
            f"export {spec.folder} is for {shape[1]}x{shape[2]} images; --height and --width "
            "need --backend torch"
        )
    sample = with_negative_prompt(args, deploy_sample_config(args, base_sample(spec, run_dir)))
    prompts = prompts_of(args, spec.data["prompts"])
    if not prompts:
        raise ConfigError("a Stable Diffusion export samples from text: give at least one --prompt")
    grid = deploy_grid(spec_schedule(spec), sample)
    pipe = PromptPipeline.open(spec.folder, args.backend)
    chunks = []
    for rows, x_T, noise in noise_batches(args, spec.latent_shape):
        z = pipe.latents(
            [prompts[i % len(prompts)] for i in rows], x_T, guidance=sample.guidance,
            negative_prompt=sample.negative_prompt, sampler=sample.sampler,
            options=sampler_kwargs(sample), grid=grid, noise=noise,
        )  # fmt: skip
        chunks.append(checked_uint8(pipe.decode(z)))
    return torch.cat(chunks)
