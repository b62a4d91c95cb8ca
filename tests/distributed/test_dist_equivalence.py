"""With the same global batch and seed, 2 processes train the same weights as 1: the batch
order, the augmentation, t and eps of every sample do not depend on the world size, DDP
averages the per-rank gradients, FSDP2 shards them, and both reduce once per optimizer step
of 2 accumulated micro-batches. The runs are in float64 (dist.yaml), so the verdict does not
depend on the CPU's kernels or the order of a sum; a perturbed rank shows it is not vacuous."""

import numpy as np
import pytest
from dist_runs import (
    DIT,
    TOLERANCE,
    loss_difference,
    losses,
    max_relative_difference,
    train_two_processes,
    weights,
)
from PIL import Image

from difflab.runs.metrics import read_metrics

pytestmark = pytest.mark.numerics  # run again under other CPU kernels by .ci/run


def test_ddp_two_processes_train_the_weights_of_one(unet_runs):
    one, ddp = unet_runs["one"], unet_runs["ddp"]
    assert list(losses(ddp)) == [1, 2, 3, 4]
    assert loss_difference(losses(one), losses(ddp)) < TOLERANCE
    for step in (2, 4):
        assert max_relative_difference(weights(one, step), weights(ddp, step)) < TOLERANCE


def test_fsdp_two_processes_train_the_weights_of_one(dit_runs):
    one, fsdp = dit_runs["one"], dit_runs["fsdp"]
    assert loss_difference(losses(one), losses(fsdp)) < TOLERANCE
    for step in (2, 4):
        assert max_relative_difference(weights(one, step), weights(fsdp, step)) < TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize(
    "runs, overrides", [("unet_runs", ["train.parallel=fsdp"]), ("dit_runs", DIT)]
)
def test_the_other_network_in_each_mode(request, runs, overrides, tmp_path):
    """UNet under FSDP2 (its levels are containers, not sharded units), DiT under DDP."""
    one, two = request.getfixturevalue(runs)["one"], train_two_processes(tmp_path, overrides)
    assert loss_difference(losses(one), losses(two)) < TOLERANCE
    assert max_relative_difference(weights(one, 4), weights(two, 4)) < TOLERANCE


@pytest.mark.parametrize("perturbation", ["noise", "order", "none"])
def test_a_perturbed_rank_fails_the_comparison(unet_runs, perturbation, tmp_path):
    """Rank 1 drawing rank 0's noise, or taking its images in another order than their noise
    and labels, moves the weights far past the tolerance; the same launcher unperturbed not."""
    two = train_two_processes(tmp_path, [], perturb=perturbation)
    difference = max_relative_difference(weights(unet_runs["one"], 4), weights(two, 4))
    if perturbation == "none":
        assert difference < TOLERANCE
    else:
        assert difference > 1e3 * TOLERANCE


def test_the_weights_moved(unet_runs):
    """The comparison above is not vacuous: 4 steps change every weight tensor's values."""
    first, last = weights(unet_runs["one"], 2), weights(unet_runs["one"], 4)
    assert max_relative_difference(first, last) > 1e-3


@pytest.mark.parametrize("runs, mode", [("unet_runs", "ddp"), ("dit_runs", "fsdp")])
def test_sample_grids_and_validation_of_two_processes(request, runs, mode):
    """Every rank samples its shard of the grid's seeds (with sharded weights, each forward
    needs all ranks) and rank 0 writes; the validation loss is that of one process."""
    one, two = request.getfixturevalue(runs)["one"], request.getfixturevalue(runs)[mode]
    for tag in ("ema", "raw"):
        name = f"samples/step-000004-{tag}.png"
        a, b = (np.asarray(Image.open(run / name), dtype=np.int16) for run in (one, two))
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= 1  # weights equal to ~1e-14: at most a rounding step
    val_one, val_two = (
        [r["val_loss"] for r in read_metrics(run) if "val_loss" in r] for run in (one, two)
    )
    assert len(val_two) == 1
    assert abs(val_one[0] - val_two[0]) < TOLERANCE * abs(val_one[0])
