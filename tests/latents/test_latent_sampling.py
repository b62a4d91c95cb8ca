"""Sampling and evaluating a latent run: `difflab sample` and `difflab eval` give decoded
images of the pixel shape, only the codec scales the latents, and a missing VAE or an image
size the VAE cannot take is one CLI line naming it."""

import json
import shutil
from dataclasses import replace

import numpy as np
import torch
from PIL import Image

from difflab.cli.commands import build_parser
from difflab.cli.eval import samples_from_run
from difflab.cli.main import main
from difflab.runs.load import load_run
from difflab.sampling.generation import resolve_labels, sample_images

from .conftest import TINY


def _fails(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()  # one error line, after any warnings (printed once per process)
    assert lines[-1].startswith("difflab: error: "), err
    assert all(line.startswith("difflab: warning: ") for line in lines[:-1]), err
    for word in words:
        assert word in err, err


def test_difflab_sample_writes_images_of_the_pixel_shape(latent_run, tmp_path):
    out = tmp_path / "png"
    assert main(["sample", str(latent_run), "--num", "3", "--steps", "2", "--out", str(out)]) == 0
    pictures = [Image.open(p) for p in sorted(out.iterdir())]
    assert [(p.mode, p.size) for p in pictures] == [("L", (8, 8))] * 3
    assert main(["sample", str(latent_run), "-n", "2", "--out", str(tmp_path / "x.npz")]) == 0
    assert np.load(tmp_path / "x.npz")["arr_0"].shape == (2, 8, 8, 1)  # NHWC


def test_difflab_eval_scores_decoded_images(latent_run):
    args = build_parser().parse_args(["eval", str(latent_run), "--num", "3", "--steps", "2"])
    samples = samples_from_run(latent_run, args, torch.device("cpu"))
    assert samples.images.dtype == torch.uint8 and samples.images.shape == (3, 1, 8, 8)


def test_the_decoder_gets_the_latents_unscaled_by_the_vae_factor_only(latent_run):
    """Guidance scale 3 acts on the denoiser in latent space; the VAE decoder is handed
    z / scaling_factor + shift_factor of the sampler's latents z, never z / 3."""
    run = load_run(latent_run)
    sample = replace(run.config.sample, guidance=3.0, steps=2)
    kwargs = dict(
        image_shape=run.image_shape,
        labels=resolve_labels(None, 4, run.num_classes),
        seeds=[0, 1, 2, 3],
        sample=sample,
        device="cpu",
    )
    # No codec: the sampler's latents themselves, from the same seeds' noise
    z = sample_images(run.denoiser, **{**kwargs, "image_shape": run.latent_shape})
    assert z.shape == (4, 4, 4, 4)
    codec = run.codec
    codec.shift_factor = 0.25
    handed = []
    decode = codec.vae.decode
    codec.vae.decode = lambda e: handed.append(e) or decode(e)
    images = sample_images(run.denoiser, **kwargs, codec=codec)
    assert images.shape == (4, 1, 8, 8)
    assert len(handed) == 1 and torch.equal(handed[0], z / 0.5 + 0.25)


def test_a_missing_vae_is_one_line_naming_it(capsys, tmp_path, latent_run):
    missing = tmp_path / "no-vae"
    argv = ["train", TINY, f"run.root={tmp_path}", f"model.latent.vae={missing}"]
    _fails(capsys, argv, "VAE folder not found", str(missing))
    moved = shutil.copytree(latent_run, tmp_path / "moved")
    info = json.loads((moved / "model.json").read_text())
    info["latent"]["vae"] = str(missing)
    (moved / "model.json").write_text(json.dumps(info))
    _fails(capsys, ["sample", str(moved), "--out", str(tmp_path / "x.png")], str(missing))


def test_an_image_size_the_vae_cannot_take_names_the_shape(capsys, tmp_path, vae_folder):
    argv = ["train", TINY, f"run.root={tmp_path}", f"model.latent.vae={vae_folder}"]
    _fails(capsys, [*argv, "data.image_size=7"], "(1, 7, 7)", "divisible by 2", "data.image_size")
    assert not (tmp_path / "tiny").exists()  # refused before the run folder is made
    # unet-cifar10 downsamples by 8: it cannot take the 4x4 latents of the 8x8 digits
    _fails(capsys, [*argv, "model.network=unet-cifar10"], "latents (4, 4, 4) of the images")


def test_classifier_guidance_is_refused_on_latents(capsys, tmp_path, latent_run):
    argv = ["sample", str(latent_run), "--classifier", "clf", "--out", str(tmp_path / "x.png")]
    _fails(capsys, argv, "classifier guidance needs a pixel run")
