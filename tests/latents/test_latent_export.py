"""A latent run exports its network and its VAE decoder, and `difflab sample --backend
onnxruntime` on them draws the images of `--backend torch`."""

import json

import numpy as np
import pytest

from difflab.cli.main import main

pytest.importorskip("onnxruntime")


def test_latent_export_draws_the_torch_images(latent_run, tmp_path):
    out = tmp_path / "export"
    assert main(["export", str(latent_run), "--exporter", "torchscript", "--out", str(out)]) == 0
    spec = json.loads((out / "export.json").read_text())
    assert spec["graphs"] == {"network": "network.onnx", "decoder": "decoder.onnx"}
    assert spec["latent_shape"] == [4, 4, 4] and spec["image_shape"] == [1, 8, 8]
    images = {}
    for backend in ("torch", "onnxruntime"):
        npz = tmp_path / f"{backend}.npz"
        args = ["sample", str(latent_run), "-n", "4", "--guidance", "2", "--steps", "3",
                "--out", str(npz), "--backend", backend, "--export-dir", str(out)]  # fmt: skip
        assert main(args) == 0
        images[backend] = np.load(npz)["arr_0"]
    assert images["torch"].shape == (4, 8, 8, 1) and len(np.unique(images["torch"])) > 10
    # float noise of the two runtimes (about 1e-6) may round a pixel across a half level
    diff = np.abs(images["onnxruntime"].astype(int) - images["torch"])
    assert diff.max() <= 1 and (diff > 0).mean() <= 0.01
