"""The exported graph (ONNX Runtime, and OpenVINO reading the same file) computes the PyTorch
network's output at any batch size, times and labels (null -1 included), hints and an unCLIP
decoder's embeddings (the null, zero, embedding included)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from difflab.export.graph import ExportedNetwork, example_inputs, export_onnx
from difflab.networks import ControlledUNet, build_network

pytest.importorskip("onnxruntime")

# relative to the output's scale (float32 noise grows with it); the graphs hold torch's own
# time-frequency table (layers.frequencies), so the float noise is that of the runtimes'
# kernels alone; a wrong graph is off by O(1)
TOLERANCE = 1e-5
UNET = {"base_channels": 8, "norm_groups": 4, "attention_resolutions": [4]}


def randomized(net: torch.nn.Module) -> torch.nn.Module:
    """Every weight moved at random from its initial value: zero-initialised output layers
    (adaLN-Zero, the UNet's last conv, ControlNet's zero convs) would hide a wrong graph."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    return net.eval()


EMBEDDING_DIM = 6


def networks():
    unet = build_network("unet-tiny", in_channels=1, image_size=8, num_classes=10, options=UNET)
    dit = build_network("dit-tiny", in_channels=1, image_size=8, num_classes=10)
    decoders = {  # unCLIP decoders: the embedding in the time embedding (and the DiT's tokens)
        f"{name}-embedding": build_network(f"{name}-tiny", in_channels=1, image_size=8,
                                           num_classes=10, embedding_dim=EMBEDDING_DIM,
                                           options=UNET if name == "unet" else None)
        for name in ("unet", "dit")
    }  # fmt: skip
    return {"unet": (unet, None), "dit": (dit, None),
            "controlnet": (ControlledUNet.from_unet(unet, hint_channels=1), (1, 8, 8)),
            **{name: (net, None) for name, net in decoders.items()}}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "exporter"),
    [("unet", "torchscript"), ("dit", "torchscript"), ("controlnet", "torchscript"),
     pytest.param("unet-embedding", "torchscript", marks=pytest.mark.slow),
     ("dit-embedding", "torchscript"),  # the embedding in c and in tokens
     ("dit", "dynamo")],  # dynamo (torch.export) is the default but slow: one network
)  # fmt: skip
def test_graph_equals_the_network(name, exporter, tmp_path):
    import onnxruntime as ort

    net, hint_shape = networks()[name]
    module = ExportedNetwork(randomized(net))
    dim = EMBEDDING_DIM if name.endswith("-embedding") else 0
    inputs = example_inputs((1, 8, 8), labels=True, hint_shape=hint_shape, embedding_dim=dim)
    used = export_onnx(module, inputs, "out", tmp_path / "n.onnx", exporter)
    assert used == exporter  # no silent fallback
    session = ort.InferenceSession(str(tmp_path / "n.onnx"), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(2)
    for n in (1, 3, 7):  # batch sizes other than the traced 2
        feeds = {
            "x": torch.randn((n, 1, 8, 8), generator=gen),
            "t": torch.rand(n, generator=gen) * 999,
            "labels": torch.randint(-1, 10, (n,), generator=gen),
        }
        feeds["labels"][0] = -1  # the null label
        if hint_shape:
            feeds["hint"] = torch.rand((n, *hint_shape), generator=gen) * 2 - 1
        if dim:
            feeds["embedding"] = F.normalize(torch.randn((n, dim), generator=gen), dim=1)
            feeds["embedding"][-1] = 0.0  # the null embedding
        with torch.no_grad():
            want = module(**feeds).numpy()
        got = session.run(None, {k: v.numpy() for k, v in feeds.items()})[0]
        scale = np.abs(want).max()  # float32 noise grows with it; the tolerance is relative
        assert got.shape == want.shape and scale > 0.1
        assert np.abs(got - want).max() <= TOLERANCE * max(scale, 1.0), (n, scale)


def test_an_openvino_export_leaves_no_onnx_file_or_its_external_weights(tmp_path):
    pytest.importorskip("openvino")
    from difflab.export.graph import onnx_files
    from difflab.export.run import write_graph

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(16, 32, 3, padding=1)  # weights large enough to go beside

        def forward(self, x):
            return self.conv(x)

    module, inputs = Net(), {"x": torch.randn(2, 16, 8, 8)}
    export_onnx(module.eval(), inputs, "out", tmp_path / "probe.onnx", "dynamo")
    assert len(onnx_files(tmp_path / "probe.onnx")) == 2  # the graph and its weights beside it
    folder = tmp_path / "export"
    folder.mkdir()
    how = dict(exporter="dynamo", fmt="openvino", precision="fp32", keep_ends=False)
    name, used = write_graph(module, inputs, "out", folder, "net", **how)
    assert used == "dynamo" and name == "net.xml"
    assert sorted(p.name for p in folder.iterdir()) == ["net.bin", "net.xml"]
