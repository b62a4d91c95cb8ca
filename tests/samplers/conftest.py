import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """These tests run many small ops, where a second thread only adds synchronisation on a
    shared, loaded machine (measured: several times slower with 2 threads)."""
    torch.set_num_threads(1)
