"""The layering of docs/architecture.md at import time: a package loads none above it."""

import os
import subprocess
import sys
from pathlib import Path

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


def test_lint_imports_keeps_the_contracts():
    """import-linter's contracts (pyproject.toml), run from the repository root as CI runs it:
    the root link difflab -> src/difflab lets it find the package whether or not difflab is
    installed ('Could not find package difflab' otherwise)."""
    root = Path(__file__).resolve().parents[1]
    linter = Path(sys.executable).with_name("lint-imports")
    if not linter.exists():
        pytest.skip("import-linter is not installed (the test extra has it)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(linter)], cwd=root, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
