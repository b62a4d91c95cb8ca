import pytest

from .tiny_sd import save_tiny_sd


@pytest.fixture(scope="session")
def sd_folder(tmp_path_factory):
    """A tiny SD v1 pipeline folder (diffusers layout), written once per test session."""
    pytest.importorskip("diffusers", reason="Stable Diffusion needs diffusers (the sd extra)")
    pytest.importorskip("transformers", reason="Stable Diffusion needs transformers (the sd extra)")
    return save_tiny_sd(tmp_path_factory.mktemp("tiny-sd") / "sd")
