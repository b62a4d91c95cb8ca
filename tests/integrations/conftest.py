import pytest

from .tiny_sd import save_tiny_sd


@pytest.fixture(scope="session")
def sd_folder(tmp_path_factory):
    """A tiny SD v1 pipeline folder (diffusers layout), written once per test session."""
    pytest.importorskip("diffusers", reason="Stable Diffusion needs diffusers (the sd extra)")
    pytest.importorskip("transformers", reason="Stable Diffusion needs transformers (the sd extra)")
    return save_tiny_sd(tmp_path_factory.mktemp("tiny-sd") / "sd")


@pytest.fixture(scope="session")
def sd2_folder(tmp_path_factory):
    """A tiny SD 2.x (v-prediction, OpenCLIP-style text encoder) folder, written once."""
    pytest.importorskip("diffusers", reason="Stable Diffusion needs diffusers (the sd extra)")
    pytest.importorskip("transformers", reason="Stable Diffusion needs transformers (the sd extra)")
    from .tiny_sd2 import save_tiny_sd2

    return save_tiny_sd2(tmp_path_factory.mktemp("tiny-sd2") / "sd2")
