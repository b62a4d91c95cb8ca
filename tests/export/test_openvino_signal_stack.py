"""OpenVINO graphs opened by difflab.deploy and released in the order they were opened leave
the process able to take a Python signal (as torch's DataLoader SIGCHLD handler and Ctrl-C
need): each OpenVINO Core's CPU plugin swaps the thread's signal stack for its own and frees it
with the Core, so with a Core per graph the thread was left on a freed stack and died with
SIGSEGV. In a subprocess, so that a crash fails the test instead of ending pytest."""

import signal
import subprocess
import sys

import numpy as np
import pytest

ov = pytest.importorskip("openvino")

RELEASE_IN_OPENING_ORDER = """
import gc, os, signal, sys
from pathlib import Path
import numpy as np
from difflab.deploy import open_graph

graphs = [open_graph(Path(sys.argv[1]), "openvino") for _ in range(2)]
for graph in graphs:
    assert (graph({"x": -np.ones((2, 4), np.float32)}) == 0).all()
first, second = graphs
del graphs, graph, first
gc.collect()
del second
gc.collect()
signal.signal(signal.SIGUSR1, lambda *args: print("handled", flush=True))
os.kill(os.getpid(), signal.SIGUSR1)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")
def test_a_signal_after_releasing_graphs_in_opening_order_is_handled(tmp_path):
    x = ov.opset13.parameter([2, 4], np.float32, name="x")
    xml = tmp_path / "relu.xml"
    ov.save_model(ov.Model([ov.opset13.relu(x)], [x]), str(xml), compress_to_fp16=False)
    done = subprocess.run(
        [sys.executable, "-c", RELEASE_IN_OPENING_ORDER, str(xml)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"exit status {done.returncode}: {done.stderr[-2000:]}"
    assert done.stdout.split() == ["handled"]
