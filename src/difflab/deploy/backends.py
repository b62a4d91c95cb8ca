"""The exported graphs as numpy functions: feeds {input name: array} -> first output, over ONNX
Runtime or OpenVINO (both from the `export` extra)."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

from difflab.core.errors import ConfigError

Graph = Callable[[dict[str, np.ndarray]], np.ndarray]
BACKENDS = ("onnxruntime", "openvino")


def require(module: str, extra: str = "export") -> ModuleType:
    """Import module, or ConfigError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"{module} is not installed; install the {extra} extra: pip install 'difflab[{extra}]'"
        ) from None


def onnxruntime_graph(path: Path, threads: int | None) -> Graph:
    """An ONNX file under ONNX Runtime's CPU provider."""
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        return session.run(None, {k: v for k, v in feeds.items() if k in names})[0]

    return run


@functools.cache
def openvino_core():
    """The process's one OpenVINO Core. Each Core's CPU plugin swaps the thread's signal stack for
    its own and frees it with the Core: Cores freed in the order they were made leave the thread
    on a freed stack, and its next Python signal handler dies with SIGSEGV (docs/architecture.md,
    Export and deployment)."""
    return require("openvino").Core()


def openvino_config(threads: int | None, precision: str) -> dict[str, str]:
    """CPU compile settings: the LATENCY hint; f32 inference for an fp32 export (on CPUs with
    bf16 OpenVINO would otherwise infer in bf16); threads; and no CPU pinning: with it every
    process pins its inference threads to the same first cores (core 0 for one thread), so two
    OpenVINO processes share one core while the others idle."""
    config = {"PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": "NO"}
    if precision == "fp32":
        config["INFERENCE_PRECISION_HINT"] = "f32"
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(threads)
    return config


def openvino_graph(path: Path, threads: int | None, precision: str) -> Graph:
    """An OpenVINO IR (or ONNX) file compiled for the CPU with static shapes, once per set of
    feed shapes met (a static graph runs faster than the dynamic-batch one; a sampler meets one
    or two: its batch and a last, smaller one). The compile settings: openvino_config."""
    core = openvino_core()
    model = core.read_model(str(path))
    config = openvino_config(threads, precision)
    names = {name for port in model.inputs for name in port.get_names()}
    compiled: dict[tuple, Callable] = {}

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        feeds = {k: v for k, v in feeds.items() if k in names}
        shapes = tuple(sorted((k, v.shape) for k, v in feeds.items()))
        if shapes not in compiled:
            static = model.clone()
            static.reshape({k: list(shape) for k, shape in shapes})
            compiled[shapes] = core.compile_model(static, "CPU", config)
        graph = compiled[shapes]
        return graph(feeds)[graph.output(0)]

    return run


def open_graph(
    path: Path, backend: str, *, precision: str = "fp32", threads: int | None = None
) -> Graph:
    """The graph at path under backend ("onnxruntime" takes .onnx only, "openvino" both)."""
    if backend == "onnxruntime":
        if path.suffix != ".onnx":
            raise ConfigError(f"onnxruntime cannot run {path}; export with --format onnx")
        return onnxruntime_graph(path, threads)
    if backend == "openvino":
        return openvino_graph(path, threads, precision)
    raise ConfigError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
