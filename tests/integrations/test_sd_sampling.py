"""Sampling a Stable Diffusion fine-tune from text: the images are those diffusers' own
pipeline draws from the exported folder with the same grid, guidance and initial noise."""

from __future__ import annotations

import pytest
import torch

from difflab.cli.main import main
from difflab.config.schema import SampleConfig
from difflab.core.errors import ConfigError
from difflab.integrations.stable_diffusion import export_run
from difflab.integrations.stable_diffusion.sampling import prompt_images
from difflab.runs.load import load_run
from difflab.samplers import StackedGenerator
from difflab.training.loop import train

from .test_sd_training import sd_config
from .tiny_coco import write_tiny_coco
from .tiny_sd import IMAGE_SIZE, LATENT_SIZE

diffusers = pytest.importorskip("diffusers")
PROMPTS = ["a cat on a mat", "two dogs"]


@pytest.fixture(scope="module")
def run_dir(sd_folder, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sd-run")
    coco = write_tiny_coco(tmp / "coco", count=4)
    return train(sd_config(sd_folder, coco, tmp, "train.steps=1"), tensorboard=False)


def test_prompt_images_are_the_diffusers_pipelines(run_dir):
    # difflab's leading grid ends at clean data: diffusers' DDIM with steps_offset 0 and
    # set_alpha_to_one visits the same times.
    sample = SampleConfig(sampler="ddim", steps=10, grid="uniform", spacing="leading", guidance=3)
    ours = prompt_images(load_run(run_dir), PROMPTS, num=2, sample=sample, seed=5)
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(export_run(run_dir))
    pipe.scheduler = diffusers.DDIMScheduler.from_config(
        pipe.scheduler.config, steps_offset=0, set_alpha_to_one=True
    )
    pipe.set_progress_bar_config(disable=True)
    noise = StackedGenerator([5, 6]).randn((2, 4, LATENT_SIZE, LATENT_SIZE), device="cpu")
    theirs = pipe(
        PROMPTS, num_inference_steps=10, guidance_scale=3, latents=noise, output_type="pt"
    ).images  # [2, 3, H, W] in [0, 1]
    assert ours.shape == (2, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert (ours.float() - theirs * 255).abs().max() <= 0.51 + 1e-3  # our uint8 rounding
    assert ((ours > 0) & (ours < 255)).float().mean() > 0.5  # not saturated


def test_an_image_depends_on_its_seed_and_prompt_only(run_dir):
    run = load_run(run_dir)
    sample = SampleConfig(steps=3, guidance=2)
    both = prompt_images(run, PROMPTS, num=2, sample=sample, seed=0, batch_size=2)
    second = prompt_images(run, PROMPTS[1:], num=1, sample=sample, seed=1)
    assert torch.equal(both[1:], second)
    assert not torch.equal(both[0], both[1])


def test_sample_command_writes_prompt_images(run_dir, tmp_path, capsys):
    out = tmp_path / "cats.png"
    argv = ["sample", str(run_dir), "--prompt", "a cat", "-n", "2", "--steps", "2"]
    assert main([*argv, "--out", str(out), "--device", "cpu"]) == 0
    assert out.is_file() and "wrote 2 images" in capsys.readouterr().out
    assert main([*argv, "--labels", "1", "--out", str(out)]) == 2
    assert "--labels does not apply" in capsys.readouterr().err


def test_sample_command_defaults_to_the_runs_prompts(run_dir, tmp_path):
    import numpy as np

    run = load_run(run_dir)
    assert len(run.config.sample.prompts) >= 2  # the recipe's grid prompts
    out = tmp_path / "default.npz"
    argv = ["sample", str(run_dir), "-n", "2", "--steps", "2", "--out", str(out)]
    assert main([*argv, "--device", "cpu"]) == 0
    sample = SampleConfig(**{**vars(run.config.sample), "steps": 2})
    expected = prompt_images(run, run.config.sample.prompts, num=2, sample=sample)
    assert np.array_equal(np.load(out)["arr_0"], expected.permute(0, 2, 3, 1).numpy())


def test_sampling_without_a_prompt_is_refused(run_dir):
    run = load_run(run_dir)
    with pytest.raises(ConfigError, match="at least one --prompt"):
        prompt_images(run, [], num=1)
