import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Small ops: a second thread only adds synchronisation on a shared, loaded machine."""
    torch.set_num_threads(1)
