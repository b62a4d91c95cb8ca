"""LoRA fine-tuning of a Stable Diffusion UNet (model.lora), on tiny components: only the
adapter trains and the optimizer holds only it, resume repeats the losses, and the exported
pytorch_lora_weights.safetensors loaded into diffusers' pipeline gives difflab's latents and
`difflab sample --prompt` images from the same noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from difflab.cli.main import main
from difflab.config.recipes import load_config
from difflab.core.errors import ConfigError
from difflab.integrations.stable_diffusion import (
    TextEncoder,
    export_run,
    load_unet,
    read_scheduler,
)
from difflab.integrations.stable_diffusion.lora import LORA_FILE
from difflab.integrations.stable_diffusion.session import open_sd_session
from difflab.runs.checkpoint import load_latest_checkpoint
from difflab.runs.load import load_run
from difflab.samplers import StackedGenerator
from difflab.training.loop import train

from .sd_compare import difflab_ddim, pipeline_latents
from .test_sd_training import losses, sd_config
from .tiny_coco import write_tiny_coco
from .tiny_sd import IMAGE_SIZE, LATENT_SIZE

diffusers = pytest.importorskip("diffusers")
pytest.importorskip("peft")

PROMPTS = ["a cat on a mat", "two dogs"]
# rank 4, scale alpha / rank = 2 (not diffusers' default 1, so a lost alpha shows)
LORA = ["model.lora.rank=4", "model.lora.alpha=8", "train.lr=1e-2"]
TARGETS = ("to_k", "to_q", "to_v", "to_out.0")


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return write_tiny_coco(tmp_path_factory.mktemp("coco"), count=6)


@pytest.fixture(scope="module")
def run_dir(sd_folder, coco, tmp_path_factory):
    config = sd_config(sd_folder, coco, tmp_path_factory.mktemp("lora-run"), *LORA)
    return train(config, tensorboard=False)


def pipeline(folder, lora_folder=None):
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(folder, local_files_only=True)
    if lora_folder is not None:
        pipe.load_lora_weights(lora_folder)  # finds pytorch_lora_weights.safetensors
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_only_the_adapter_trains(sd_folder, coco, tmp_path):
    s = open_sd_session(sd_config(sd_folder, coco, tmp_path, *LORA))
    trained = {id(p) for group in s.state.optimizer.param_groups for p in group["params"]}
    unet = s.denoiser.network.unet
    adapter = {id(p) for name, p in unet.named_parameters() if ".lora_" in name}
    assert trained == adapter
    # A [r, in] and B [out, r] on every target projection, nothing else
    targets = [
        m for n, m in unet.named_modules() if n.endswith(TARGETS) and hasattr(m, "base_layer")
    ]
    # 4 projections x 2 attentions (self, cross) x 4 transformer blocks (down, mid, 2 up)
    assert len(targets) == 32
    count = sum(4 * (m.base_layer.in_features + m.base_layer.out_features) for m in targets)
    assert (
        sum(p.numel() for group in s.state.optimizer.param_groups for p in group["params"]) == count
    )


def test_the_checkpoint_moves_the_adapter_only(sd_folder, run_dir):
    """After training, the checkpoint holds the adapter alone (A and B of 32 projections, the
    frozen UNet rebuilt from the pretrained folder: test_sd_slim_checkpoints), its B matrices
    (zero at the start) moved, and the optimizer state holds the adapter alone: two moments
    per adapter parameter; the loaded run's base weights are the pretrained ones bit for bit."""
    ckpt = load_latest_checkpoint(run_dir)
    assert all(".lora_" in k for k in ckpt.model) and len(ckpt.model) == 64
    ups = [v for k, v in ckpt.model.items() if ".lora_B." in k]
    assert len(ups) == 32 and all(v.abs().max() > 0 for v in ups)
    moments = ckpt.state["optimizer"]["state"]
    assert all(".lora_" in name for name in moments) and len(moments) == 64
    for name, state in moments.items():
        shape = ckpt.model[name].shape
        assert state["exp_avg"].shape == state["exp_avg_sq"].shape == shape
    pretrained = load_unet(sd_folder).state_dict()
    loaded = load_run(run_dir, weights="raw").denoiser.network.unet.state_dict()
    base = {k.replace(".base_layer", ""): v for k, v in loaded.items() if ".lora_" not in k}
    assert base.keys() == pretrained.keys()
    assert all(torch.equal(v, pretrained[k]) for k, v in base.items())


def test_resume_repeats_the_losses(sd_folder, coco, tmp_path):
    straight = train(sd_config(sd_folder, coco, tmp_path / "a", *LORA), tensorboard=False)
    config = sd_config(sd_folder, coco, tmp_path / "b", *LORA)
    stopped = train(config, tensorboard=False, stop_at=2)
    config.train.resume = str(stopped)
    resumed = train(config, tensorboard=False)
    assert len(losses(straight)) == 4
    assert losses(resumed) == losses(straight)


def test_the_exported_lora_in_diffusers_gives_difflabs_latents(sd_folder, run_dir):
    """DDIM with guidance 7.5 on SD v1's grid: the pipeline with the run's adapter loaded
    (load_lora_weights) against difflab's sampler on the run's EMA denoiser, same noise."""
    out = export_run(run_dir)
    assert out == run_dir / "lora" and sorted(p.name for p in out.iterdir()) == [LORA_FILE]
    settings, text = read_scheduler(sd_folder), TextEncoder.from_folder(sd_folder)
    noise = torch.randn(2, 4, LATENT_SIZE, LATENT_SIZE, generator=torch.Generator().manual_seed(3))
    args = dict(guidance=7.5, steps=10)
    ours = difflab_ddim(load_run(run_dir).denoiser, text, settings, PROMPTS, noise, **args)
    theirs = pipeline_latents(pipeline(sd_folder, out), PROMPTS, noise, **args)
    plain = pipeline_latents(pipeline(sd_folder), PROMPTS, noise, **args)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert (theirs - plain).abs().max() > 1e-2  # the adapter changes the latents


def test_sample_prompt_on_a_lora_run_draws_the_pipelines_images(sd_folder, run_dir, tmp_path):
    assert_sample_prompt_draws_the_pipelines_images(sd_folder, run_dir, tmp_path)


def assert_sample_prompt_draws_the_pipelines_images(sd_folder, run_dir, tmp_path):
    """`difflab sample --prompt` images of a LoRA run against the pipeline with its exported
    adapter, from the same noise (also test_sd_text_encoder_lora)."""
    out = tmp_path / "cats.npz"
    argv = ["sample", str(run_dir), "--prompt", PROMPTS[0], "--prompt", PROMPTS[1], "-n", "2"]
    argv += ["--sampler", "ddim", "--grid", "uniform", "--spacing", "leading", "--steps", "10"]
    argv += ["--guidance", "3", "--seed", "5", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    ours = torch.from_numpy(np.load(out)["arr_0"]).permute(0, 3, 1, 2).float()
    pipe = pipeline(sd_folder, export_run(run_dir))
    # difflab's leading grid ends at clean data: diffusers' DDIM with steps_offset 0 and
    # set_alpha_to_one visits the same times (as test_sd_sampling)
    pipe.scheduler = diffusers.DDIMScheduler.from_config(
        pipe.scheduler.config, steps_offset=0, set_alpha_to_one=True
    )
    noise = StackedGenerator([5, 6]).randn((2, 4, LATENT_SIZE, LATENT_SIZE), device="cpu")
    theirs = pipe(
        PROMPTS, num_inference_steps=10, guidance_scale=3, latents=noise, output_type="pt"
    ).images  # [2, 3, H, W] in [0, 1]
    assert (ours - theirs * 255).abs().max() <= 0.51 + 1e-3  # our uint8 rounding


def test_lora_settings_are_checked():
    with pytest.raises(ConfigError, match="'model.lora.rank' must be >= 0"):
        load_config("digits", ["model.lora.rank=-1"])
    with pytest.raises(ConfigError, match="'model.lora.rank' must be 0 without model.pretrained"):
        load_config("digits", ["model.lora.rank=4"])
    sd = ["model.pretrained=sd", "data.root=coco", "model.lora.rank=4"]
    with pytest.raises(ConfigError, match="'model.lora.alpha' must be > 0"):
        load_config("sd-v1-4-coco", [*sd, "model.lora.alpha=0"])
    with pytest.raises(ConfigError, match="'model.lora.targets' must be a non-empty list"):
        load_config("sd-v1-4-coco", [*sd, "model.lora.targets=[]"])


def test_targets_that_name_no_module_are_refused(sd_folder, coco, tmp_path):
    config = sd_config(sd_folder, coco, tmp_path, *LORA, "model.lora.targets=[to_nothing]")
    with pytest.raises(ConfigError, match=r"'model.lora.targets' \(\['to_nothing'\]\)"):
        open_sd_session(config)
    assert not any(tmp_path.iterdir())


def test_a_full_fine_tune_has_no_adapter(sd_folder, coco, tmp_path):
    s = open_sd_session(sd_config(sd_folder, coco, tmp_path))
    assert not any(hasattr(m, "lora_A") for m in s.denoiser.modules())
    assert all(p.requires_grad for p in s.denoiser.network.parameters())


def test_finetune_sd_exports_a_lora_runs_adapter(sd_folder, coco, tmp_path, capsys):
    items = [f"model.pretrained={sd_folder}", f"data.root={coco}", f"run.root={tmp_path}"]
    items += [f"data.image_size={IMAGE_SIZE}", "data.num_workers=0", "train.steps=1"]
    items += ["train.batch_size=2", "train.device=cpu", "train.progress=false"]
    items += ["train.sample_every=0", "model.lora.rank=2"]
    assert main(["finetune-sd", "sd-v1-4-coco", *items]) == 0
    lora = tmp_path / "sd-v1-4-coco" / "lora" / LORA_FILE
    assert f"diffusers LoRA: {lora}" in capsys.readouterr().out
    assert lora.is_file() and not (tmp_path / "sd-v1-4-coco" / "diffusers").exists()
