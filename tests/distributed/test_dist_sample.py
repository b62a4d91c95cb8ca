"""`torchrun -m difflab sample` splits the seeds over the ranks and rank 0 writes the images
that one process draws for the same seeds."""

from dataclasses import replace

import pytest
import torch
from dist_runs import torchrun

from difflab.evaluation import load_samples_npz
from difflab.runs.load import load_run
from difflab.sampling.generation import generate

pytestmark = pytest.mark.numerics  # run again under other CPU kernels by .ci/run


def test_two_process_sample_equals_one_process(unet_runs, tmp_path):
    run_dir = unet_runs["one"]
    out = tmp_path / "two.npz"
    # 5 images over 2 ranks: 3 each, the sixth is padding; labels cycle 0..9.
    torchrun("sample", str(run_dir), "-n", "5", "--seed", "7", "--steps", "3", "--out", str(out))
    run = load_run(run_dir)
    images, labels = generate(run, num=5, seed=7, sample=replace(run.config.sample, steps=3))
    two_images, two_labels = load_samples_npz(out)
    assert torch.equal(two_labels, labels)
    # each rank's batch of 3 against one batch of 5: float rounding, at most one grey level
    assert (two_images.int() - images.int()).abs().max() <= 1
