"""Shared fixtures for the evaluation tests."""

from __future__ import annotations

import pytest
import torch

from difflab.data import load_dataset


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on the shared 2-core machine, 2 threads ran training 15x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def digits_split():
    """(train, test): difflab's fixed 1500 / 297 split of the sklearn digits."""
    return load_dataset("digits", split="train"), load_dataset("digits", split="test")


@pytest.fixture(scope="session")
def digits(digits_split):
    return digits_split[0]


@pytest.fixture(scope="session")
def digits_classifier(digits_split):
    from difflab.evaluation import train_classifier

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    classifier = train_classifier(digits_split[0], steps=200, batch_size=64, lr=3e-3, seed=0)
    torch.set_num_threads(threads)
    return classifier
