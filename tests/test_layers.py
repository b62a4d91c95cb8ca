"""The layering of docs/architecture.md at import time: a package loads none above it."""

import subprocess
import sys

import pytest

# (package imported, prefix of the modules it must not load)
BELOW = [
    ("difflab.sampling", "difflab.training"),
    ("difflab.runs", "difflab.sampling"),
    ("difflab.config", "difflab.runs"),
    ("difflab.core", "difflab.schedules"),
]


@pytest.mark.parametrize(("package", "above"), BELOW)
def test_a_package_loads_no_layer_above_it(package, above):
    code = (
        f"import sys, {package}; "
        f"print([m for m in sys.modules if m == {above!r} or m.startswith({above!r} + '.')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"import {package} loaded {out.stdout.strip()}"
