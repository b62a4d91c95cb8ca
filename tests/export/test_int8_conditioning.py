"""The INT8 export quantizes the image path only: the time, label and embedding paths (ops fed
by no image input) stay in float. 8 bits over t in [0, 1000) would be steps of about 4, so
nearby times of the sampling grid would reach the network as the same time."""

import numpy as np
import pytest
import torch

from difflab.deploy import openvino_core
from difflab.export.graph import ExportedNetwork, example_inputs, export_onnx
from difflab.export.openvino import conditioning_ops, save_openvino
from difflab.networks import build_network

pytest.importorskip("nncf")
ov = pytest.importorskip("openvino")

UNET = {"base_channels": 8, "norm_groups": 4, "attention_resolutions": [4]}


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """(the FP32 OpenVINO model, the INT8 IR's model) of a tiny class-conditional UNet."""
    torch.manual_seed(0)
    net = build_network("unet-tiny", in_channels=1, image_size=8, num_classes=10, options=UNET)
    folder = tmp_path_factory.mktemp("int8")
    onnx = folder / "net.onnx"
    inputs = example_inputs((1, 8, 8), labels=True, hint_shape=None)
    with torch.no_grad():
        export_onnx(ExportedNetwork(net).eval(), inputs, "out", onnx, "torchscript")
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((1, 1, 8, 8), dtype=np.float32),
              "t": rng.uniform(0, 1000, (1,)).astype(np.float32),
              "labels": rng.integers(-1, 10, (1,))} for _ in range(8)]  # fmt: skip
    save_openvino(onnx, folder / "int8.xml", "int8", feeds, keep_ends=False)
    core = openvino_core()
    return core.read_model(str(onnx)), core.read_model(str(folder / "int8.xml"))


def test_the_conditioning_ops_are_those_fed_by_no_image_input(graphs):
    fp32, _ = graphs
    names = set(conditioning_ops(fp32))
    kinds = {op.get_type_name() for op in fp32.get_ordered_ops() if op.get_friendly_name() in names}
    assert {"Sin", "Cos", "Gather"} <= kinds  # the time's sinusoids, the label table
    x = next(p for p in fp32.get_parameters() if p.get_friendly_name() == "x")
    fed_by_x = [u.get_node() for u in x.output(0).get_target_inputs()]
    assert all(op.get_friendly_name() not in names for op in fed_by_x)


def test_no_quantizer_sits_on_the_conditioning_path(graphs):
    fp32, int8 = graphs
    conditioning = set(conditioning_ops(fp32)) | {"t", "labels"}
    quantizers = [op for op in int8.get_ordered_ops() if op.get_type_name() == "FakeQuantize"]
    assert quantizers, "nothing was quantized"
    sources = {op.input_value(0).get_node().get_friendly_name() for op in quantizers}
    on_path = sorted(sources & conditioning)
    assert not on_path, f"activations quantized on the time/label path: {on_path}"
