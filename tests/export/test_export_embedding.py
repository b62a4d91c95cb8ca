"""An unCLIP decoder run exports with an embedding input and export.json's null embedding, and
difflab.deploy guides given embeddings against it as torch's generate does: the same uint8
images for the same embeddings and seeds, from numpy (`draw`) and from `difflab sample
--backend onnxruntime --variations IMAGE`."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from difflab.cli.main import main
from difflab.data import load_dataset
from difflab.deploy import draw, open_graph, read_spec, to_uint8
from difflab.export import deploy_grid
from difflab.runs.load import load_run
from difflab.samplers import StackedGenerator
from difflab.sampling.generation import generate

pytest.importorskip("onnxruntime")
pytest.importorskip("transformers")

TINY = str(Path(__file__).parents[1] / "training" / "tiny.yaml")
DIM = 8
# a high scale on raw weights after a few large steps: the embedding shows in the uint8 images
SAMPLE = ["--steps", "3", "--guidance", "30", "--weights", "raw"]


@pytest.fixture(scope="module")
def decoder(tmp_path_factory) -> Path:
    """A 2-step unCLIP decoder run on a tiny random CLIP's image embeddings, exported."""
    from encoders.tiny_clip import save_tiny_clip

    root = tmp_path_factory.mktemp("decoder")
    clip = save_tiny_clip(root / "clip", projection_dim=DIM)
    args = [f"run.root={root}", "train.steps=2", "train.lr=0.03", "train.sample_every=0",
            "train.val_every=0", f"model.embedding.image_encoder={clip}",
            "model.class_conditional=false"]  # fmt: skip
    assert main(["train", TINY, *args]) == 0
    run = root / "tiny"
    assert main(["export", str(run), "--weights", "raw", "--exporter", "torchscript"]) == 0
    return run


def test_export_json_records_the_embedding_input_and_its_null(decoder):
    spec = read_spec(decoder / "export" / "onnx")
    assert spec.data["inputs"] == ["x", "t", "embedding"]
    record = spec.data["embedding"]
    assert record["dim"] == DIM and record["image_encoder"] == load_run(decoder).image_encoder
    np.testing.assert_array_equal(spec.null_embedding, np.zeros(DIM, np.float32))


def _close(got: np.ndarray, want: np.ndarray) -> None:
    """Equal uint8 images up to the float noise of the runtime (about 1e-6), which may round a
    pixel across a half level."""
    diff = np.abs(got.astype(int) - want)
    assert diff.max() <= 1 and (diff > 0).mean() <= 0.01


def test_deploy_draws_generates_images_from_the_same_embeddings(decoder):
    """Given embeddings (cycled, as generate cycles them) guided against the null one, and none:
    the graph fed the null embedding, unguided, as torch's network reads an absent one."""
    run = load_run(decoder, weights="raw")
    emb = F.normalize(torch.randn((2, DIM), generator=torch.Generator().manual_seed(3)), dim=1)
    sample = replace(run.config.sample, steps=3, guidance=30.0)
    spec = read_spec(decoder / "export" / "onnx")
    network = open_graph(spec.path("network"), "onnxruntime")
    grid = deploy_grid(run.denoiser.schedule, sample)
    x_T = StackedGenerator([7 + i for i in range(4)]).randn((4, *spec.latent_shape), device="cpu")
    images = {}
    for given in (emb, None):
        want, _ = generate(run, num=4, sample=sample, embeddings=given, seed=7)
        x0 = draw(
            network, grid, x_T.numpy(), parameterization="v", guidance=30.0,
            embeddings=None if given is None else given.numpy()[[0, 1, 0, 1]],
            null_embedding=spec.null_embedding,
        )  # fmt: skip
        _close(to_uint8(x0), want.numpy())
        images[given is None] = want
    assert not torch.equal(images[True], images[False])  # the embeddings show in the images


def test_sample_backend_variations_equal_torchs(decoder, tmp_path):
    image = load_dataset("digits", split="test").images[0, 0].numpy()
    Image.fromarray(image).save(tmp_path / "digit.png")
    images = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / f"{backend}.npz"
        args = ["sample", str(decoder), "-n", "3", "--out", str(out), "--backend", backend]
        assert main([*args, *SAMPLE, "--variations", str(tmp_path / "digit.png")]) == 0
        images[backend] = np.load(out)["arr_0"]
    _close(images["onnxruntime"], images["torch"])


def test_int8_calibration_feeds_hold_the_images_embeddings_and_the_null_one(decoder):
    from difflab.encoders import load_image_encoder
    from difflab.export.calibration import calibration_feeds, clean_batch

    run = load_run(decoder)
    feeds = calibration_feeds(run, {"x": None, "t": None, "embedding": None}, num=6)
    got = np.concatenate([f["embedding"] for f in feeds])
    images = clean_batch(run, 6)["image"]  # pixel run: x0 is the image the encoder sees
    with torch.no_grad():
        want = load_image_encoder(run.image_encoder).encode(images).numpy()
    np.testing.assert_allclose(got[::2], want[::2], atol=1e-6, rtol=0)
    assert (got[1::2] == 0).all()  # every other feed is guidance's null half
