"""difflab.deploy compiles OpenVINO graphs for the CPU unpinned, at the requested threads and, for
an fp32 export, in f32: OpenVINO pins each process's inference threads to the same first cores
by default, so two 1-thread processes share core 0 while the other cores idle."""

import numpy as np
import pytest

from difflab.deploy.backends import openvino_config, openvino_core

ov = pytest.importorskip("openvino")


def compiled(threads: int, precision: str):
    x = ov.opset13.parameter([2, 4], np.float32, name="x")
    model = ov.Model([ov.opset13.relu(x)], [x])
    return openvino_core().compile_model(model, "CPU", openvino_config(threads, precision))


def test_an_fp32_graph_compiles_unpinned_in_f32_on_the_requested_threads():
    graph = compiled(1, "fp32")
    assert graph.get_property("ENABLE_CPU_PINNING") is False
    assert graph.get_property("INFERENCE_NUM_THREADS") == 1
    assert graph.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32


def test_an_int8_graph_compiles_unpinned():
    assert compiled(1, "int8").get_property("ENABLE_CPU_PINNING") is False
