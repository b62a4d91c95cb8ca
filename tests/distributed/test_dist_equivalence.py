"""With the same global batch and seed, 2 processes train the same weights as 1: the batch
order, the augmentation, t and eps of every sample do not depend on the world size, DDP
averages the per-rank gradients, FSDP2 shards them, and both reduce once per optimizer step
of 2 accumulated micro-batches."""

from dist_runs import loss_difference, losses, max_relative_difference, weights

TOLERANCE = 1e-5  # float32 sums in a different order; a wrong batch or noise gives ~1e-1


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


def test_the_weights_moved(unet_runs):
    """The comparison above is not vacuous: 4 steps change every weight tensor's values."""
    first, last = weights(unet_runs["one"], 2), weights(unet_runs["one"], 4)
    assert max_relative_difference(first, last) > 1e-3
