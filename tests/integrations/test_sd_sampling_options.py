"""diffusers' pipeline options in difflab's SD sampling: a negative prompt and a height and width
give diffusers' images from the same noise; `difflab sample` takes --negative-prompt,
--height, --width and --prompt-file (after --prompt) and refuses an empty prompt file."""

from __future__ import annotations

import numpy as np
import pytest

from difflab.cli.main import main
from difflab.config.schema import SampleConfig
from difflab.integrations.stable_diffusion import export_run
from difflab.integrations.stable_diffusion.sampling import prompt_images
from difflab.runs.load import load_run
from difflab.samplers import StackedGenerator

from .test_sd_sampling import PROMPTS, run_dir  # noqa: F401  (run_dir: a fixture)
from .tiny_sd import IMAGE_SIZE, LATENT_SIZE

diffusers = pytest.importorskip("diffusers")
NEGATIVE = "blurry, low quality"


def test_negative_prompt_and_size_give_the_diffusers_pipelines_images(run_dir):  # noqa: F811
    sample = SampleConfig(
        sampler="ddim", steps=6, grid="uniform", spacing="leading", guidance=3,
        negative_prompt=NEGATIVE,
    )  # fmt: skip
    size = (IMAGE_SIZE, 2 * IMAGE_SIZE)
    ours = prompt_images(load_run(run_dir), PROMPTS, num=2, sample=sample, seed=5, size=size)
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(export_run(run_dir))
    pipe.scheduler = diffusers.DDIMScheduler.from_config(
        pipe.scheduler.config, steps_offset=0, set_alpha_to_one=True
    )
    pipe.set_progress_bar_config(disable=True)
    noise = StackedGenerator([5, 6]).randn((2, 4, LATENT_SIZE, 2 * LATENT_SIZE), device="cpu")
    kwargs = dict(num_inference_steps=6, guidance_scale=3, latents=noise, output_type="pt")
    theirs = pipe(PROMPTS, negative_prompt=[NEGATIVE] * 2, height=size[0], width=size[1],
                  **kwargs).images  # fmt: skip
    assert ours.shape == (2, 3, *size)
    assert (ours.float() - theirs * 255).abs().max() <= 0.51 + 1e-3  # our uint8 rounding
    plain = pipe(PROMPTS, height=size[0], width=size[1], **kwargs).images
    assert (ours.float() - plain * 255).abs().max() > 2  # the negative prompt changed them


def test_sample_command_takes_the_pipeline_options(run_dir, tmp_path):  # noqa: F811
    file = tmp_path / "prompts.txt"
    file.write_text(f"\n{PROMPTS[1]}\n\n")
    out = tmp_path / "images.npz"
    argv = ["sample", str(run_dir), "-n", "2", "--steps", "2", "--out", str(out)]
    options = ["--prompt", PROMPTS[0], "--prompt-file", str(file)]
    options += ["--negative-prompt", NEGATIVE, "--height", "8", "--width", "24"]
    assert main([*argv, *options, "--device", "cpu"]) == 0
    run = load_run(run_dir)
    sample = SampleConfig(**{**vars(run.config.sample), "steps": 2, "negative_prompt": NEGATIVE})
    expected = prompt_images(run, PROMPTS, num=2, sample=sample, size=(8, 24))
    assert np.array_equal(np.load(out)["arr_0"], expected.permute(0, 2, 3, 1).numpy())


def test_an_empty_prompt_file_is_named(run_dir, tmp_path, capsys):  # noqa: F811
    file = tmp_path / "empty.txt"
    file.write_text("\n  \n")
    argv = ["sample", str(run_dir), "--prompt-file", str(file), "--out", str(tmp_path / "x.png")]
    assert main(argv) == 2
    assert f"--prompt-file {file} holds no prompt" in capsys.readouterr().err
