"""Torch-free deployment runtime: an exported run (`difflab export`) sampled with numpy samplers
over ONNX Runtime or OpenVINO. Nothing in this package imports torch."""

from difflab.deploy.backends import BACKENDS, open_graph, openvino_core, require
from difflab.deploy.generate import draw, to_uint8
from difflab.deploy.samplers import DEPLOY_SAMPLERS
from difflab.deploy.spec import EXPORT_JSON, ExportSpec, Grid, read_spec
from difflab.deploy.time_groups import open_network

__all__ = [
    "BACKENDS",
    "DEPLOY_SAMPLERS",
    "EXPORT_JSON",
    "ExportSpec",
    "Grid",
    "draw",
    "open_graph",
    "open_network",
    "openvino_core",
    "read_spec",
    "require",
    "to_uint8",
]
