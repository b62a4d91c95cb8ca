"""`difflab export` of a Stable Diffusion run writes optimum's ONNX layout, and difflab.deploy
(with torch unimportable) runs prompts through it under ONNX Runtime to the latents of
difflab's torch sampler from the same initial noise."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from difflab.cli.main import main
from difflab.config.schema import SampleConfig
from difflab.integrations.stable_diffusion import TextEncoder
from difflab.integrations.stable_diffusion.sampling import sample_text_latents
from difflab.runs.load import load_run
from difflab.samplers import StackedGenerator
from difflab.training.loop import train

from .test_sd_training import sd_config
from .tiny_coco import write_tiny_coco

pytest.importorskip("diffusers")
pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")

PROMPTS = ["a cat on a mat", "two dogs, one cat!"]
OTHER_PROMPTS = ["a red car", "an empty room"]
SEEDS = [5, 6]
# relative to the latents' scale: guidance 7.5 on a random UNet drives them well past 1, and the
# float32 noise of two runtimes grows with them; a wrong token, text state, timestep or guidance
# scale moves them by 1e-2 or more
TOLERANCE = 1e-4
BLOCK_TORCH = """
import importlib.abc, sys

class BlockTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch.") or name == "transformers":
            raise ImportError(f"{name} is blocked")

sys.meta_path.insert(0, BlockTorch())
import numpy as np
from difflab.deploy.text import PromptPipeline

folder, prompts = sys.argv[1], sys.argv[2].split("|")
pipe = PromptPipeline.open(folder)
z = pipe.latents(prompts, np.load(f"{folder}/../x_T.npy"))
np.save(f"{folder}/../z.npy", z)
assert not any(m.split(".")[0] in ("torch", "transformers") for m in sys.modules)
"""


@pytest.fixture(scope="module")
def run_dir(sd_folder, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sd-onnx")
    coco = write_tiny_coco(tmp / "coco", count=4)
    # train.lr: one large step, so the exported UNet is not the pretrained one
    config = sd_config(sd_folder, coco, tmp, "train.steps=1", "train.ema_decay=0",
                       "sample.steps=4")  # fmt: skip
    run = train(config, tensorboard=False)
    assert main(["export", str(run), "--exporter", "torchscript"]) == 0
    return run


def torch_latents(run, sample: SampleConfig) -> torch.Tensor:
    text = TextEncoder.from_folder(run.config.model.pretrained)
    shape = run.latent_shape
    return sample_text_latents(
        run.denoiser, text, PROMPTS, seeds=SEEDS, latent_shape=shape, sample=sample, device="cpu"
    )


def initial_noise(run) -> np.ndarray:
    return StackedGenerator(SEEDS).randn((len(SEEDS), *run.latent_shape), device="cpu").numpy()


def test_the_export_has_optimums_layout(run_dir):
    out = run_dir / "export" / "onnx"
    for part in ("text_encoder", "unet", "vae_decoder"):
        assert (out / part / "model.onnx").is_file() and (out / part / "config.json").is_file()
    for file in ("tokenizer/tokenizer_config.json", "tokenizer/tokenizer.json", "model_index.json",
                 "scheduler/scheduler_config.json"):  # fmt: skip
        assert (out / file).is_file(), file
    spec = json.loads((out / "export.json").read_text())
    assert spec["pipeline"] == "stable-diffusion" and spec["checkpoint"]["name"] == "step-000001"
    assert spec["sample"]["guidance"] == 7.5 and spec["sample"]["steps"] == 4


def test_torch_free_prompt_latents_equal_the_torch_samplers(run_dir):
    """The run's own settings (DDIM, 4 steps, guidance 7.5 against the empty prompt)."""
    run = load_run(run_dir)
    want = torch_latents(run, run.config.sample).numpy()
    folder = run_dir / "export" / "onnx"
    np.save(run_dir / "export" / "x_T.npy", initial_noise(run))
    done = subprocess.run([sys.executable, "-c", BLOCK_TORCH, str(folder), "|".join(PROMPTS)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = np.load(run_dir / "export" / "z.npy")
    scale = np.abs(want).max()
    assert scale > 0.5  # latents, not zeros
    np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE * max(scale, 1.0))


def test_negative_prompt_sampler_and_decoder_equal_torchs(run_dir):
    from difflab.deploy.text import PromptPipeline
    from difflab.export import deploy_grid

    run = load_run(run_dir)
    sample = SampleConfig(sampler="dpmpp-2m", steps=3, guidance=3.0, negative_prompt="dogs",
                          spacing="leading")  # fmt: skip
    want = torch_latents(run, sample)
    pipe = PromptPipeline.open(run_dir / "export" / "onnx")
    grid = deploy_grid(run.denoiser.schedule, sample)
    got = pipe.latents(PROMPTS, initial_noise(run), guidance=3.0, negative_prompt="dogs",
                       sampler="dpmpp-2m", options={}, grid=grid)  # fmt: skip
    scale = max(want.abs().max().item(), 1.0)
    np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=TOLERANCE * scale)
    with torch.no_grad():
        images = run.codec.decode(want).numpy()
    np.testing.assert_allclose(pipe.decode(want.numpy()), images, rtol=0, atol=TOLERANCE)


@pytest.fixture(scope="module")
def openvino_export(run_dir):
    pytest.importorskip("openvino")
    assert main(["export", str(run_dir), "--format", "openvino", "--exporter", "torchscript"]) == 0
    return run_dir / "export" / "openvino"


def test_openvino_fp32_prompt_latents_equal_the_torch_samplers(run_dir, openvino_export):
    """optimum-intel's layout, f32 weights, and PromptPipeline over OpenVINO as over ONNX
    Runtime: the torch sampler's latents and decoded images."""
    from difflab.deploy.text import PromptPipeline

    spec = json.loads((openvino_export / "export.json").read_text())
    assert spec["graphs"]["unet"] == "unet/openvino_model.xml" and spec["format"] == "openvino"
    assert set(spec["precisions"].values()) == {"fp32"}
    unet = (openvino_export / "unet" / "openvino_model.xml").read_text()
    assert 'element_type="f16"' not in unet  # weights not compressed
    run = load_run(run_dir)
    want = torch_latents(run, run.config.sample)
    pipe = PromptPipeline.open(openvino_export, "openvino")
    got = pipe.latents(PROMPTS, initial_noise(run))
    scale = np.abs(want.numpy()).max()
    np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=TOLERANCE * max(scale, 1.0))
    with torch.no_grad():
        images = run.codec.decode(want).numpy()
    np.testing.assert_allclose(pipe.decode(want.numpy()), images, rtol=0, atol=TOLERANCE)


@pytest.mark.slow
def test_int8_unet_keeps_what_the_prompt_does_to_the_latents(run_dir, openvino_export, tmp_path):
    """The latents themselves follow x_T (their correlation with FP32's says little), so the
    check is on what the UNet alone makes of the text: the change of the latents between two
    prompt sets from the same noise correlates with FP32's; the UNet is quantized (INT8 differs
    from FP32 beyond float noise), the text encoder and VAE decoder are not."""
    from difflab.deploy.text import PromptPipeline

    pytest.importorskip("nncf")
    int8 = tmp_path / "int8"
    args = ["export", str(run_dir), "--format", "openvino", "--precision", "int8"]
    assert main([*args, "--out", str(int8), "--exporter", "torchscript"]) == 0
    assert json.loads((int8 / "export.json").read_text())["precisions"] == {
        "text_encoder": "fp32", "unet": "int8", "vae_decoder": "fp32"}  # fmt: skip
    quantized = {part: (int8 / part / "openvino_model.xml").read_text().count("FakeQuantize")
                 for part in ("text_encoder", "unet", "vae_decoder")}  # fmt: skip
    assert quantized["unet"] > 10 and quantized["text_encoder"] == quantized["vae_decoder"] == 0
    x_T = initial_noise(load_run(run_dir))
    z = {}
    for name, folder in (("fp32", openvino_export), ("int8", int8)):
        pipe = PromptPipeline.open(folder, "openvino")
        z[name] = [pipe.latents(prompts, x_T) for prompts in (PROMPTS, OTHER_PROMPTS)]
    fp32, int8_z = z["fp32"][0], z["int8"][0]
    assert np.abs(int8_z - fp32).max() > 1e-2 * np.abs(fp32).max()  # quantized, not float noise
    text_effect = {k: (v[0] - v[1]).ravel() for k, v in z.items()}
    assert np.corrcoef(text_effect["fp32"], text_effect["int8"])[0, 1] > 0.8


def test_sample_backend_prompt_images_equal_torchs(run_dir, openvino_export, tmp_path):
    """`difflab sample --prompt` over the run's ONNX export and over the OpenVINO export folder
    given itself draws torch's uint8 images (prompts and seeds cycled over batches of 2)."""
    flags = ["-n", "3", "--batch-size", "2", "--prompt", PROMPTS[0], "--prompt", PROMPTS[1],
             "--negative-prompt", "dogs", "--steps", "3", "--guidance", "3"]  # fmt: skip
    images = {}
    for backend, where in (("torch", run_dir), ("onnxruntime", run_dir),
                           ("openvino", openvino_export)):  # fmt: skip
        out = tmp_path / f"{backend}.npz"
        assert main(["sample", str(where), *flags, "--out", str(out), "--backend", backend]) == 0
        images[backend] = np.load(out)["arr_0"]
    assert images["torch"].shape == (3, 16, 16, 3) and len(np.unique(images["torch"])) > 10
    for backend in ("onnxruntime", "openvino"):
        # float noise of the runtimes may round a pixel across a half level
        diff = np.abs(images[backend].astype(int) - images["torch"])
        assert diff.max() <= 1 and (diff > 0).mean() <= 0.01, backend


def test_sample_backend_prompt_errors_are_one_line(run_dir, tmp_path, capsys):
    out = ["--out", str(tmp_path / "a.npz"), "--backend", "onnxruntime"]
    for flags, message in ((["--labels", "1"], "--labels does not apply"),
                           (["--height", "32"], "is for 16x16 images")):  # fmt: skip
        assert main(["sample", str(run_dir), "-n", "1", *flags, *out]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
