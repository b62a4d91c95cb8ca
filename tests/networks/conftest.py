import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks run far faster on one thread: on the shared 2-core machine two OpenMP
    threads spin at each op's barrier (a 8x8 conv went from 0.1 ms to 45 ms)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
