"""INT8 post-training quantization keeps the whole calibration range of every activation: a
denoiser's activations span orders of magnitude across noise levels, and a range estimator
that averages or clips per-feed extremes saturates the rare large ones."""

import numpy as np
import pytest
import torch

from difflab.deploy import openvino_core
from difflab.export.openvino import save_openvino

pytest.importorskip("nncf")
pytest.importorskip("openvino")


def test_the_largest_calibration_activation_is_not_clipped(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.Conv2d(8, 4, 1))
    x = torch.randn(1, 4, 8, 8)
    onnx = tmp_path / "net.onnx"
    torch.onnx.export(net.eval(), (x,), str(onnx), input_names=["x"], dynamo=False)
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((1, 4, 8, 8), dtype=np.float32)} for _ in range(15)]
    feeds.append({"x": 8 * feeds[0]["x"]})  # one feed 8x larger, as at another noise level
    xml = tmp_path / "net.xml"
    save_openvino(onnx, xml, "int8", feeds, keep_ends=False)
    compiled = openvino_core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    big = feeds[-1]["x"]
    with torch.no_grad():
        expected = net(torch.from_numpy(big)).numpy()
    got = compiled({"x": big})[0]
    error = np.linalg.norm(got - expected) / np.linalg.norm(expected)
    assert error < 0.05, f"INT8 output on the largest feed is off by {error:.1%} (clipped?)"
