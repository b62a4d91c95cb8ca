"""The network of a run as one ONNX graph: inputs x [N, c, h, w], t [N] (the network's time
input, schedule.network_time), labels [N] int64 (NULL_LABEL = -1 is the null label, looked up
by the graph as training did), hint [N, C_hint, H, W] and embedding [N, E] (an unCLIP
decoder's; the null embedding is zeros) where the run has them; output the network's
prediction [N, c, h, w]. The batch is dynamic."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from difflab.conditioning import Condition
from difflab.core.errors import ConfigError

OPSET = 18


class ExportedNetwork(nn.Module):
    """F(x, t, labels, hint, embedding) with conditions as plain tensors (None: absent), float32
    out."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        labels: Tensor | None = None,
        hint: Tensor | None = None,
        embedding: Tensor | None = None,
    ) -> Tensor:
        cond = Condition(labels=labels, hint=hint, embedding=embedding)
        return self.network(x, t, None if cond.is_empty() else cond).float()


def example_inputs(
    latent_shape: tuple[int, ...],
    *,
    labels: bool,
    hint_shape: tuple[int, ...] | None,
    embedding_dim: int = 0,
) -> dict[str, Tensor]:
    """A batch of 2 for tracing, by input name: noise, times, labels (one null), hints,
    embeddings (one null)."""
    gen = torch.Generator().manual_seed(0)
    out = {"x": torch.randn((2, *latent_shape), generator=gen), "t": torch.tensor([10.0, 500.0])}
    if labels:
        out["labels"] = torch.tensor([0, -1], dtype=torch.long)
    if hint_shape is not None:
        out["hint"] = torch.rand((2, *hint_shape), generator=gen) * 2 - 1
    if embedding_dim:
        out["embedding"] = torch.randn((2, embedding_dim), generator=gen)
        out["embedding"][1] = 0.0  # the null embedding
    return out


def export_onnx(
    module: nn.Module, inputs: dict[str, Tensor], output: str, path: Path, exporter: str
) -> str:
    """Write module(**inputs) to path with a dynamic batch on every input and the output;
    returns the exporter used: `exporter` ("dynamo": torch.export; "torchscript"), where
    dynamo's failure falls back to the TorchScript exporter."""
    names = list(inputs)
    axes = {name: {0: "batch"} for name in [*names, output]}
    common = dict(
        kwargs=inputs, input_names=names, output_names=[output], dynamic_axes=axes,
        opset_version=OPSET,
    )  # fmt: skip
    errors = []
    for kind in ("dynamo", "torchscript") if exporter == "dynamo" else ("torchscript",):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(module, (), str(path), dynamo=kind == "dynamo", **common)
            return kind
        except Exception as err:  # torch.export's many failure types: try the next, then say
            errors.append(f"{kind}: {' '.join(str(err).split())[:300]}")
    raise ConfigError(f"cannot export the network to ONNX ({'; '.join(errors)})")


def onnx_files(path: Path) -> list[Path]:
    """An ONNX file and the external data files its tensors name (the dynamo exporter writes
    the weights beside the graph, as path.data)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    names = {
        entry.value
        for tensor in model.graph.initializer
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return [path, *(path.parent / name for name in sorted(names))]
