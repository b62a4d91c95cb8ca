"""The scripts of bench/ (a folder of scripts, not a package) loaded as modules for tests."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench_script():
    """load(name): bench/NAME.py as the module bench_NAME (a name no test package has, e.g.
    tests/samplers), with bench/ on sys.path meanwhile, since the scripts import each other."""
    sys.path.insert(0, str(BENCH))

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
        return module

    yield load
    sys.path.remove(str(BENCH))
