"""Stable Diffusion v1.x from local diffusers-format folders (the `sd` extra).

unet = SDUNet(load_unet(folder))             # difflab network F(x, t_net, cond)
text = TextEncoder.from_folder(folder)       # captions -> Condition(text=...)
settings = read_scheduler(folder)            # schedule + parameterization
codec = VAECodec.from_folder(folder)         # difflab.latents
"""

from difflab.integrations.stable_diffusion.export import export_pipeline, export_run
from difflab.integrations.stable_diffusion.folder import load_clip, load_unet
from difflab.integrations.stable_diffusion.network import SDUNet, sd_network
from difflab.integrations.stable_diffusion.scheduler import (
    SchedulerSettings,
    diffusers_ddim_times,
    read_scheduler,
    scheduler_settings,
)
from difflab.integrations.stable_diffusion.text import TextEncoder

__all__ = [
    "SDUNet",
    "SchedulerSettings",
    "TextEncoder",
    "diffusers_ddim_times",
    "export_pipeline",
    "export_run",
    "load_clip",
    "load_unet",
    "read_scheduler",
    "scheduler_settings",
    "sd_network",
]
