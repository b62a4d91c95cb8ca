"""The steps that bench/sd_speed.py times on Stable Diffusion v1's UNet with random weights: one
training step on precomputed latents and text embeddings, or one batch sampled with DDIM and
classifier-free guidance, for difflab and for diffusers in a named mode (throughput_steps'
modes: "eager", "compile", "reduce-overhead", "+cl" = channels_last; "default" is difflab's own
choice). The VAE and the text encoder are frozen and cost both libraries the same, so the
latents and embeddings are random tensors made once per batch size (the same in every setting).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from difflab.conditioning import Condition, classifier_free_guidance
from difflab.config.schema import Config, ModelConfig
from difflab.integrations.stable_diffusion import SDUNet, diffusers_ddim_times, scheduler_settings
from difflab.integrations.stable_diffusion.network import SD_NETWORK
from difflab.parameterization import Denoiser
from difflab.runs.rng import seeded_generator
from difflab.samplers import SAMPLERS, SamplingGrid
from difflab.samplers.compiled import SamplingNetwork, sampling_network
from difflab.training.session import build_train_state
from difflab.training.step import MicroBatch, train_step
from throughput_steps import autocast, compiled, parse_mode, sampling_dtype

Step = Callable[[int], Any]
GUIDANCE = 7.5
TOKENS = 77  # CLIP's context length
# SD v1's published scheduler config (DDIM form).
SD_V1_SCHEDULER = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    prediction_type="epsilon", clip_sample=False, set_alpha_to_one=False, steps_offset=1,
    timestep_spacing="leading",
)  # fmt: skip


@dataclass(frozen=True)
class SDSize:
    """A UNet2DConditionModel configuration: its arguments other than diffusers' defaults."""

    name: str
    unet: dict[str, Any]
    latent_size: int  # latents 4 x latent_size x latent_size
    text_dim: int  # the text encoder's hidden size


# SD v1.x's unet/config.json: diffusers' defaults but for these two (512 px images, CLIP ViT-L/14).
FULL = SDSize(
    "SD v1 UNet (860M), random weights, latents 4x64x64, text 77x768",
    dict(sample_size=64, cross_attention_dim=768),
    latent_size=64,
    text_dim=768,
)
# The UNet of tests/integrations/tiny_sd.py.
TINY = SDSize(
    "tiny SD UNet (tests' config), latents 4x8x8, text 77x32",
    dict(
        sample_size=8, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), block_out_channels=(32, 64),
        layers_per_block=1, cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
    ),
    latent_size=8,
    text_dim=32,
)  # fmt: skip


def make_unet(size: SDSize, device: torch.device) -> nn.Module:
    """diffusers' UNet2DConditionModel from seed 0, initialised on the device."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    with torch.device(device):
        return UNet2DConditionModel(**size.unet)


@dataclass(frozen=True)
class SDInputs:
    latents: Tensor  # [B, 4, h, w] VAE latents (already scaled), the training batch
    text: Tensor  # [B, 77, D] the text encoder's last hidden states
    null_text: Tensor  # [1, 77, D] the empty prompt's
    noise: Tensor  # [B, 4, h, w] the initial latents of sampling


def make_inputs(size: SDSize, batch: int, device: torch.device) -> SDInputs:
    """The same tensors for every setting of a batch size (drawn on the CPU from seed 0)."""
    g = torch.Generator().manual_seed(0)
    latent = (batch, 4, size.latent_size, size.latent_size)
    text = torch.randn(batch + 1, TOKENS, size.text_dim, generator=g)
    return SDInputs(
        latents=torch.randn(latent, generator=g).to(device),
        text=text[1:].to(device),
        null_text=text[:1].to(device),
        noise=torch.randn(latent, generator=g).to(device),
    )


def unet_flops(size: SDSize, device: torch.device) -> tuple[float, float]:
    """(guided sampling forward, i.e. two UNet forwards, and forward + backward) FLOPs per
    image, counted on a batch of 2."""
    unet, x = make_unet(size, device), make_inputs(size, 2, device)
    t = torch.full((2,), 500, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        unet(x.latents, t, encoder_hidden_states=x.text)
    forward = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        unet(x.latents, t, encoder_hidden_states=x.text).sample.square().mean().backward()
    return forward, counter.get_total_flops() / 2


def difflab_train(unet: nn.Module, mode: str, batch: int, bench: Any) -> Step:
    """train_step on the TrainState of an SD run (as open_sd_session makes it: the trainer's
    state, then caption dropout to the null text): as built ("default": bf16 autocast, fused
    AdamW and CUDA graphs on CUDA; eager float32 on CPU), or with the network compiled in the
    given mode and layout instead."""
    device, config = bench.device, Config(model=ModelConfig(network=SD_NETWORK))
    config.model.schedule = "scaled-linear"
    compile_mode, channels_last = parse_mode(mode) if mode != "default" else (None, False)
    if mode != "default":
        config.train.compile = "off"
    network = SDUNet(unet.to(memory_format=torch.channels_last) if channels_last else unet)
    x = make_inputs(bench.size, batch, device)
    denoiser = Denoiser(network, scheduler_settings(SD_V1_SCHEDULER).make_schedule(), "eps")
    state = build_train_state(config, denoiser, device, x.null_text)
    if mode != "default":
        state = replace(state, forward=compiled(network, compile_mode))
    batches = [MicroBatch(x0=x.latents, cond=Condition(text=x.text))]

    def step(i: int) -> None:
        train_step(state, batches, seeded_generator(config.train.seed, "step", i, device), i)

    return step


def diffusers_train(unet: nn.Module, mode: str, batch: int, bench: Any) -> Step:
    """The step of diffusers' examples/text_to_image/train_text_to_image.py (its defaults: no
    EMA, AdamW with weight decay 1e-2, clipping at 1) with the optimizer fused and the loss never
    read back (its best case)."""
    from diffusers import DDPMScheduler

    compile_mode, channels_last = parse_mode(mode)
    if channels_last:
        unet.to(memory_format=torch.channels_last)
    device, forward = bench.device, compiled(unet, compile_mode)
    scheduler = DDPMScheduler(**{k: SD_V1_SCHEDULER[k] for k in list(SD_V1_SCHEDULER)[:4]})
    optimizer = torch.optim.AdamW(
        unet.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8,
        fused=device.type == "cuda",
    )  # fmt: skip
    x = make_inputs(bench.size, batch, device)

    def step(i: int) -> None:
        noise = torch.randn_like(x.latents)
        timesteps = torch.randint(0, 1000, (batch,), device=device).long()
        noisy = scheduler.add_noise(x.latents, noise, timesteps)
        with autocast(device):
            prediction = forward(noisy, timesteps, x.text, return_dict=False)[0]
        loss = F.mse_loss(prediction.float(), noise.float(), reduction="mean")
        loss.backward()
        nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def sample_dtype(bench: Any) -> torch.dtype:
    """float32 for the agreement check (bench.fp32), else the device's sampling precision."""
    return torch.float32 if bench.fp32 else sampling_dtype(bench.device)


def difflab_sample(unet: nn.Module, mode: str, batch: int, bench: Any) -> Step:
    """sample_text_latents' path on given embeddings: samplers.ddim over classifier-free
    guidance of a Denoiser of SamplingNetwork(SDUNet), on diffusers' DDIM grid. "default" is
    sampling_network (bf16, channels_last, CUDA graphs on CUDA); other modes compile as named.
    SamplingNetwork gives the network the text in its dtype, as the pipeline casts its prompt
    embeddings."""
    network = SDUNet(unet)
    if mode == "default" and not bench.fp32:
        fast = sampling_network(network, bench.device)
    else:
        compile_mode, channels_last = parse_mode(mode) if mode != "default" else (None, False)
        fast = SamplingNetwork(
            network, dtype=sample_dtype(bench), channels_last=channels_last, mode=compile_mode
        )
    settings = scheduler_settings(SD_V1_SCHEDULER)
    denoiser = Denoiser(fast, settings.make_schedule(), settings.parameterization)
    x = make_inputs(bench.size, batch, bench.device)
    cond = Condition(text=x.text)  # SamplingNetwork casts it to its weights' dtype
    denoise = classifier_free_guidance(denoiser, cond, cond.null(x.null_text), GUIDANCE)
    grid = SamplingGrid.build(denoiser.schedule, diffusers_ddim_times(settings, bench.sample_steps))
    ddim = SAMPLERS.get("ddim")

    @torch.no_grad()
    def step(i: int) -> Tensor:
        return ddim(denoise, x.noise, grid)

    return step


def diffusers_sample(unet: nn.Module, mode: str, batch: int, bench: Any) -> Step:
    """StableDiffusionPipeline itself (no VAE, text encoder or tokenizer: prompt_embeds,
    negative_prompt_embeds, latents and output_type="latent" given), its UNet in the sampling
    dtype and compiled as named (pipe.unet = torch.compile(pipe.unet, ...), as diffusers'
    documentation does), with its DDIMScheduler in SD v1's configuration."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from diffusers.utils import logging

    logging.set_verbosity_error()  # its warnings about the missing components
    compile_mode, channels_last = parse_mode(mode)
    dtype = sample_dtype(bench)
    unet = unet.to(dtype=dtype).eval().requires_grad_(False)
    if channels_last:
        unet.to(memory_format=torch.channels_last)
    pipe = StableDiffusionPipeline(
        vae=None, text_encoder=None, tokenizer=None, unet=unet,
        scheduler=DDIMScheduler(**SD_V1_SCHEDULER), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip
    pipe.unet = compiled(unet, compile_mode)
    pipe.set_progress_bar_config(disable=True)
    x = make_inputs(bench.size, batch, bench.device)
    pixels = bench.size.latent_size * pipe.vae_scale_factor

    def step(i: int) -> Tensor:
        return pipe(
            prompt_embeds=x.text.to(dtype), negative_prompt_embeds=x.null_text.expand_as(x.text),
            latents=x.noise.to(dtype), height=pixels, width=pixels, guidance_scale=GUIDANCE,
            num_inference_steps=bench.sample_steps, output_type="latent",
        ).images  # fmt: skip

    return step


# (kind, library) -> the builder of its step from a UNet, a mode, a batch size and the bench.
BUILDERS: dict[tuple[str, str], Callable[[nn.Module, str, int, Any], Step]] = {
    ("train", "difflab"): difflab_train,
    ("train", "diffusers"): diffusers_train,
    ("sample", "difflab"): difflab_sample,
    ("sample", "diffusers"): diffusers_sample,
}
