"""diffusers' train_text_to_image.py options as config keys: gradient checkpointing gives the
gradients of the plain backward (and really recomputes), and model.override_prediction_type
trains v on an eps folder and exports a scheduler that says v_prediction."""

from __future__ import annotations

import pytest
import torch

from difflab.core.errors import ConfigError
from difflab.integrations.stable_diffusion import export_run
from difflab.integrations.stable_diffusion.session import open_sd_session
from difflab.training.loop import train
from difflab.training.step import micro_batch_loss

from .test_sd_training import coco, sd_config  # noqa: F401  (coco: a fixture)

diffusers = pytest.importorskip("diffusers")


def gradients(session) -> tuple[dict[str, torch.Tensor], int]:
    """The UNet's gradients of one micro-batch's loss, and how often its first resnet ran."""
    calls = []
    unet = session.denoiser.network.unet
    unet.down_blocks[0].resnets[0].register_forward_pre_hook(lambda *_: calls.append(1))
    batch = session.data.micro_batch(0, torch.Generator().manual_seed(0))
    micro_batch_loss(session.state, batch, torch.Generator().manual_seed(1), 0.0).backward()
    return {k: p.grad.clone() for k, p in unet.named_parameters()}, len(calls)


def test_gradient_checkpointing_gives_the_same_gradients(sd_folder, coco, tmp_path):  # noqa: F811
    plain, ran = gradients(open_sd_session(sd_config(sd_folder, coco, tmp_path / "a")))
    config = sd_config(sd_folder, coco, tmp_path / "b", "train.gradient_checkpointing=true")
    checkpointed, reran = gradients(open_sd_session(config))
    assert (ran, reran) == (
        1,
        2,
    )  # the block runs again in backward (pre-hook: recomputation stops early)
    scale = max(g.abs().max() for g in plain.values())
    # The recomputation runs the same float32 kernels on the same inputs: any difference is
    # kernel nondeterminism (~1e-7 of the largest gradient); a wrong or missing gradient of a
    # checkpointed block is of the gradients' own size.
    for key, g in plain.items():
        torch.testing.assert_close(checkpointed[key], g, rtol=1e-5, atol=1e-5 * float(scale))


def test_prediction_type_override_trains_v_and_exports_v_prediction(sd_folder, coco, tmp_path):  # noqa: F811
    with pytest.raises(ConfigError, match="model.parameterization"):
        open_sd_session(sd_config(sd_folder, coco, tmp_path / "a", "model.parameterization=v"))
    extra = ("model.parameterization=v", "model.override_prediction_type=true", "train.steps=2")
    config = sd_config(sd_folder, coco, tmp_path / "b", *extra)
    assert open_sd_session(config).state.loss_fn.parameterization == "v"
    run = train(config, tensorboard=False)
    out = export_run(run)
    scheduler = diffusers.DDIMScheduler.from_pretrained(out / "scheduler")
    assert scheduler.config.prediction_type == "v_prediction"
    source = diffusers.DDIMScheduler.from_pretrained(sd_folder / "scheduler")
    assert source.config.prediction_type == "epsilon"
