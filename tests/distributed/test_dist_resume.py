"""Checkpoints hold full tensors whatever wrote them: a run checkpointed at step 2 by 2
processes (DDP, or FSDP2 with sharded weights) continues under 1 process or under 2 with the
losses and weights of never stopping."""

import pytest
from dist_runs import (
    TOLERANCE,
    copy_at_step,
    loss_difference,
    losses,
    max_relative_difference,
    resume_one_process,
    resume_two_processes,
    weights,
)

pytestmark = pytest.mark.numerics  # run again under other CPU kernels by .ci/run


@pytest.mark.parametrize("resume", [resume_one_process, resume_two_processes])
@pytest.mark.parametrize("runs, written_by", [("unet_runs", "ddp"), ("dit_runs", "fsdp")])
def test_two_process_checkpoint_resumes(request, runs, written_by, resume, tmp_path):
    uninterrupted = request.getfixturevalue(runs)[written_by]
    resumed = resume(copy_at_step(uninterrupted, 2, tmp_path / "run"))
    assert loss_difference(losses(uninterrupted), losses(resumed)) < TOLERANCE
    assert max_relative_difference(weights(uninterrupted, 4), weights(resumed, 4)) < TOLERANCE
