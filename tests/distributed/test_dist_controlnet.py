"""A ControlNet run under torchrun (2 processes, gloo): with random scribble hints, it repeats
the 1-process run's losses and weights, and a copy stopped at step 2 resumes under 2 processes
to the losses and weights of never stopping."""

import pytest
from dist_runs import (
    TOLERANCE,
    copy_at_step,
    loss_difference,
    losses,
    max_relative_difference,
    resume_two_processes,
    train_one_process,
    train_two_processes,
    weights,
)

pytestmark = pytest.mark.numerics  # run again under other CPU kernels by .ci/run


@pytest.fixture(scope="module")
def controlnet_runs(tmp_path_factory):
    """(1-process, 2-process) ControlNet runs of 4 steps on a 2-step base run."""
    pytest.importorskip("cv2", reason="scribble hints need the hints extra")
    root = tmp_path_factory.mktemp("controlnet")
    base = train_one_process(root / "base", ["train.steps=2", "train.sample_every=0"])
    cn = [f"model.controlnet.base_run={base}", "model.controlnet.hint=scribble"]
    cn += ["model.controlnet.hint_options={max_radius: 2, break_rate: 0.3}"]
    return train_one_process(root / "one", cn), train_two_processes(root / "two", cn)


def test_two_processes_train_the_controlnet_as_one(controlnet_runs):
    one, two = controlnet_runs
    assert loss_difference(losses(one), losses(two)) < TOLERANCE
    assert max_relative_difference(weights(one, 4), weights(two, 4)) < TOLERANCE


@pytest.mark.slow  # two more torchrun launches; resume under torchrun is in test_dist_resume
def test_a_two_process_controlnet_run_resumes_exactly(controlnet_runs, tmp_path):
    _, uninterrupted = controlnet_runs
    resumed = resume_two_processes(copy_at_step(uninterrupted, 2, tmp_path / "run"))
    assert loss_difference(losses(uninterrupted), losses(resumed)) < TOLERANCE
    assert max_relative_difference(weights(uninterrupted, 4), weights(resumed, 4)) < TOLERANCE
