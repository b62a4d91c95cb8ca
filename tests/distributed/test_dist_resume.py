"""Checkpoints hold full tensors whatever wrote them: a run checkpointed at step 2 by 2
processes continues under 1 process or under 2 with the losses and weights of never stopping."""

from dist_runs import (
    copy_at_step,
    loss_difference,
    losses,
    max_relative_difference,
    resume_one_process,
    resume_two_processes,
    weights,
)

TOLERANCE = 1e-5


def _check_resumed(resumed, uninterrupted) -> None:
    assert loss_difference(losses(uninterrupted), losses(resumed)) < TOLERANCE
    assert max_relative_difference(weights(uninterrupted, 4), weights(resumed, 4)) < TOLERANCE


def test_ddp_checkpoint_resumes_under_one_process(unet_runs, tmp_path):
    resumed = resume_one_process(copy_at_step(unet_runs["ddp"], 2, tmp_path / "run"))
    _check_resumed(resumed, unet_runs["ddp"])


def test_ddp_checkpoint_resumes_under_two_processes(unet_runs, tmp_path):
    resumed = resume_two_processes(copy_at_step(unet_runs["ddp"], 2, tmp_path / "run"))
    _check_resumed(resumed, unet_runs["ddp"])


def test_fsdp_checkpoint_resumes_under_one_process(dit_runs, tmp_path):
    resumed = resume_one_process(copy_at_step(dit_runs["fsdp"], 2, tmp_path / "run"))
    _check_resumed(resumed, dit_runs["fsdp"])


def test_fsdp_checkpoint_resumes_sharded_under_two_processes(dit_runs, tmp_path):
    resumed = resume_two_processes(copy_at_step(dit_runs["fsdp"], 2, tmp_path / "run"))
    _check_resumed(resumed, dit_runs["fsdp"])
