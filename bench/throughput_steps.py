"""The steps that bench/throughput.py times: one training step or one sampled batch, for difflab
and for diffusers, in a named mode ("eager", "compile", "compile+cl", "reduce-overhead",
"reduce-overhead+cl"; "+cl" = channels_last model and batch)."""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from difflab.config.schema import Config, ModelConfig
from difflab.parameterization import Denoiser
from difflab.runs.rng import seeded_generator
from difflab.samplers import SAMPLERS, SamplingGrid
from difflab.samplers.compiled import SamplingNetwork, sampling_network
from difflab.schedules import make_schedule, uniform_grid
from difflab.training.session import build_train_state
from difflab.training.step import MicroBatch, train_step

Step = Callable[[int], None]


@dataclass(frozen=True)
class Shape:
    base_channels: int
    channel_mults: tuple[int, ...]
    image_size: int


def diffusers_available() -> bool:
    return importlib.util.find_spec("diffusers") is not None


def diffusers_network(shape: Shape) -> nn.Module:
    """UNet2DModel as in google/ddpm-cifar10-32: attention at the second level (16x16)."""
    from diffusers import UNet2DModel

    levels = len(shape.channel_mults)
    down = ["AttnDownBlock2D" if i == 1 else "DownBlock2D" for i in range(levels)]
    up = ["AttnUpBlock2D" if i == levels - 2 else "UpBlock2D" for i in range(levels)]
    return UNet2DModel(
        sample_size=shape.image_size,
        in_channels=3,
        out_channels=3,
        block_out_channels=tuple(shape.base_channels * m for m in shape.channel_mults),
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        layers_per_block=2,
        attention_head_dim=None,
        dropout=0.1,
    )


def parse_mode(mode: str) -> tuple[str | None, bool]:
    """(torch.compile mode or None for eager, channels_last)."""
    base, _, suffix = mode.partition("+")
    return (None if base == "eager" else "default" if base == "compile" else base), suffix == "cl"


def compiled(module: nn.Module, compile_mode: str | None) -> nn.Module:
    """Static shapes: one graph per setting and batch, never a dynamic-shape recompile."""
    if compile_mode is None:
        return module
    return torch.compile(module, mode=compile_mode, dynamic=False)


def training_batch(bench: Any, batch: int, channels_last: bool) -> torch.Tensor:
    """A fixed batch of images in [-1, 1], already on the device."""
    size = bench.shape.image_size
    x0 = torch.rand(batch, 3, size, size, device=bench.device) * 2 - 1
    return x0.contiguous(memory_format=torch.channels_last) if channels_last else x0


def difflab_train(network: nn.Module, mode: str, batch: int, bench: Any) -> Step:
    """difflab's own train_step (EMA, clipping and the NaN guard on) on the TrainState the
    trainer builds from its default config: as built ("default"), or with the network compiled
    in the given mode and layout instead."""
    device, config = bench.device, Config(model=ModelConfig(class_conditional=False))
    compile_mode, channels_last = parse_mode(mode) if mode != "default" else (None, False)
    if mode != "default":
        config.train.compile = "off"
    if channels_last:
        network.to(memory_format=torch.channels_last)
    denoiser = Denoiser(network, make_schedule("linear", num_steps=1000), "eps")
    state = build_train_state(config, denoiser, device)
    if mode != "default":
        state.forward = compiled(network, compile_mode)
    batches = [MicroBatch(x0=training_batch(bench, batch, channels_last), cond=None)]

    def step(i: int) -> None:
        generator = seeded_generator(config.train.seed, "step", i, device)
        train_step(state, batches, generator, i)

    return step


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (the example's --mixed_precision bf16), float32 on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def diffusers_train(network: nn.Module, mode: str, batch: int, bench: Any) -> Step:
    """The step of diffusers' examples/unconditional_image_generation/train_unconditional.py,
    with the optimizer fused and the loss never read back (its best case)."""
    from diffusers import DDPMScheduler

    compile_mode, channels_last = parse_mode(mode)
    if channels_last:
        network.to(memory_format=torch.channels_last)
    device, forward = bench.device, compiled(network, compile_mode)
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6, eps=1e-8,
        fused=device.type == "cuda",
    )  # fmt: skip
    x0 = training_batch(bench, batch, channels_last)

    def step(i: int) -> None:
        noise = torch.randn(x0.shape, device=device)
        timesteps = torch.randint(0, 1000, (batch,), device=device).long()
        noisy = scheduler.add_noise(x0, noise, timesteps)
        with autocast(device):
            prediction = forward(noisy, timesteps).sample
        loss = F.mse_loss(prediction.float(), noise.float())
        loss.backward()
        nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def sampling_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def difflab_sample(network: nn.Module, mode: str, batch: int, bench: Any) -> Step:
    """samplers.ddim over a SamplingNetwork: the device's default (sampling_network), or bf16
    on CUDA compiled in `mode` (channels_last with "+cl")."""
    device = bench.device
    if mode == "default":
        fast = sampling_network(network, device)
    else:
        compile_mode, channels_last = parse_mode(mode)
        fast = SamplingNetwork(
            network, dtype=sampling_dtype(device), channels_last=channels_last, mode=compile_mode
        )
    schedule = make_schedule("linear", num_steps=1000)
    denoiser = Denoiser(fast, schedule, "eps")
    grid = SamplingGrid.build(schedule, uniform_grid(schedule, bench.sample_steps))
    size = bench.shape.image_size
    ddim = SAMPLERS.get("ddim")

    def step(i: int) -> None:
        generator = torch.Generator(device).manual_seed(i)
        x = torch.randn(batch, 3, size, size, generator=generator, device=device)
        ddim(denoiser, x, grid)

    return step


def diffusers_sample(network: nn.Module, mode: str, batch: int, bench: Any) -> Step:
    """The loop of diffusers' DDIMPipeline: UNet2DModel in bf16 (CUDA) and DDIMScheduler."""
    from diffusers import DDIMScheduler
    from diffusers.utils import logging

    logging.set_verbosity_error()  # its warning about casting a model to bf16 with .to()
    compile_mode, _ = parse_mode(mode)
    device, dtype = bench.device, sampling_dtype(bench.device)
    network = network.to(dtype=dtype).eval().requires_grad_(False)
    forward = compiled(network, compile_mode)
    scheduler = DDIMScheduler(num_train_timesteps=1000)
    scheduler.set_timesteps(bench.sample_steps)
    # On the device once, so that a compiled UNet takes no CPU input (CUDA graphs need none).
    timesteps = scheduler.timesteps.to(device)
    size = bench.shape.image_size

    @torch.no_grad()
    def step(i: int) -> None:
        generator = torch.Generator(device).manual_seed(i)
        image = torch.randn(batch, 3, size, size, generator=generator, device=device, dtype=dtype)
        for t, t_device in zip(scheduler.timesteps, timesteps, strict=True):
            if compile_mode == "reduce-overhead":
                torch.compiler.cudagraph_mark_step_begin()
            output = forward(image, t_device).sample
            image = scheduler.step(output, t, image, eta=0.0).prev_sample

    return step


TRAIN_BUILDERS: dict[str, Callable[[nn.Module, str, int, Any], Step]] = {
    "difflab": difflab_train,
    "diffusers": diffusers_train,
}
SAMPLE_BUILDERS: dict[str, Callable[[nn.Module, str, int, Any], Step]] = {
    "difflab": difflab_sample,
    "diffusers": diffusers_sample,
}
