"""INT8 calibration feeds of a Stable Diffusion UNet: what it sees when sampling. The first
captioned training images' VAE latents (posterior mean) noised to the noisy times of the run's
sampling grid, x_t = alpha(t) z0 + sigma(t) eps, each fed twice, as classifier-free guidance
feeds it: with its caption's text states and with the negative prompt's (default: the empty
prompt, SD's null text)."""

from __future__ import annotations

import numpy as np
import torch

from difflab.data.transforms import ToSymmetric
from difflab.deploy.text import UNET_INPUTS
from difflab.export.calibration import CALIBRATION_SIZE
from difflab.export.manifest import deploy_grid
from difflab.integrations.stable_diffusion.session import captioned_images
from difflab.integrations.stable_diffusion.text import TextEncoder
from difflab.runs.load import LoadedRun

CALIBRATION_IMAGES = 8  # captioned training images (and their captions) the feeds cycle over


@torch.no_grad()
def unet_calibration_feeds(
    run: LoadedRun, text: TextEncoder, num: int = CALIBRATION_SIZE
) -> list[dict[str, np.ndarray]]:
    """num feeds of batch 1 by optimum's UNet input names; feed 2k is pair k's noised latents
    with its caption, feed 2k + 1 the same latents with the negative prompt."""
    dataset = captioned_images(run.config)
    items = [dataset[(0, i)] for i in range(min(len(dataset), CALIBRATION_IMAGES))]
    x = ToSymmetric()({"image": torch.stack([item.image for item in items])})["image"]
    z0 = run.codec.encode(x)  # [k, c, h, w], the posterior mean
    captions = text.encode([item.caption for item in items])  # [k, L, D]
    negative = run.config.sample.negative_prompt
    null = text.encode([negative]) if negative else text.null_text  # [1, L, D]
    grid = deploy_grid(run.denoiser.schedule, run.config.sample)
    pairs = (num + 1) // 2
    item = torch.arange(pairs) % len(items)
    step = np.arange(pairs) % grid.steps  # the noisy grid points, cycled
    alpha = torch.from_numpy(grid.alpha[step]).float().view(-1, 1, 1, 1)
    sigma = torch.from_numpy(grid.sigma[step]).float().view(-1, 1, 1, 1)
    eps = torch.randn((pairs, *z0.shape[1:]), generator=torch.Generator().manual_seed(1))
    x_t = (alpha * z0[item] + sigma * eps).numpy()
    t = grid.network_t[step].astype(np.float32)
    feeds = []
    for k in range(pairs):
        for states in (captions[item[k]], null[0]):
            feeds.append(dict(zip(UNET_INPUTS, (x_t[k : k + 1], t[k : k + 1],
                                                states[None].numpy()), strict=True)))  # fmt: skip
    return feeds[:num]
