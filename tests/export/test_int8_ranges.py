"""INT8 post-training quantization keeps the whole calibration range of every activation: a
denoiser's activations span orders of magnitude across noise levels, and a range estimator
that averages or clips per-feed extremes saturates the rare large ones. Its weights use 7 bits,
so that CPUs without VNNI (whose int8 kernels sum u8*s8 pairs in saturating int16) agree."""

import numpy as np
import pytest
import torch

from difflab.deploy import openvino_core
from difflab.export.openvino import save_openvino

pytest.importorskip("nncf")
ov = pytest.importorskip("openvino")
pytestmark = pytest.mark.numerics  # run again by .ci/run under AVX2 kernels (no VNNI)


@pytest.fixture(scope="module")
def int8_net(tmp_path_factory):
    """Two convolutions, their INT8 IR and its calibration feeds (one 8x larger than the rest)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.Conv2d(8, 4, 1))
    folder = tmp_path_factory.mktemp("int8")
    onnx = folder / "net.onnx"
    x = torch.randn(1, 4, 8, 8)
    torch.onnx.export(net.eval(), (x,), str(onnx), input_names=["x"], dynamo=False)
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((1, 4, 8, 8), dtype=np.float32)} for _ in range(15)]
    feeds.append({"x": 8 * feeds[0]["x"]})  # one feed 8x larger, as at another noise level
    xml = folder / "net.xml"
    save_openvino(onnx, xml, "int8", feeds, keep_ends=False)
    return net, feeds, xml


def test_the_largest_calibration_activation_is_not_clipped(int8_net):
    net, feeds, xml = int8_net
    compiled = openvino_core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    big = feeds[-1]["x"]
    with torch.no_grad():
        expected = net(torch.from_numpy(big)).numpy()
    got = compiled({"x": big})[0]
    error = np.linalg.norm(got - expected) / np.linalg.norm(expected)
    assert error < 0.05, f"INT8 output on the largest feed is {error:.1%} off (clipped? saturated?)"


def test_every_weight_fits_the_int16_pair_sums_of_cpus_without_vnni(int8_net):
    _, _, xml = int8_net
    ops = openvino_core().read_model(str(xml)).get_ordered_ops()
    weights = [op.get_data() for op in ops if op.get_type_name() == "Constant"
               and op.get_element_type() == ov.Type.i8]  # fmt: skip
    assert len(weights) == 2  # both convolutions quantized
    # 255 * 64 * 2 = 32640 fits int16; a full 8-bit weight (127) makes 64770, which saturates
    assert [int(np.abs(w).max()) <= 64 for w in weights] == [True, True]
