"""The distillation target against the exact denoiser of a Gaussian mixture: one DDIM step of a
student that predicts x~ lands where the teacher's two DDIM steps land (Salimans & Ho 2022,
Algorithm 2), in every parameterization, discrete and continuous time; the loss built on it."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from difflab.conditioning import NULL_LABEL, Condition, conditioned
from difflab.distillation import DistillationLoss, distillation_target, target_eps
from difflab.parameterization import Denoiser, Prediction, training_target
from difflab.parameterization.denoiser import alpha_sigma
from difflab.samplers import SAMPLERS, SamplingGrid
from difflab.schedules import make_schedule, uniform_grid
from difflab.training.precision import resolve_precision
from difflab.training.step import MicroBatch, micro_batch_loss
from samplers.gaussian_mixture import MixtureNetwork, two_dim_mixture

pytestmark = pytest.mark.numerics  # run again under other CPU kernels by .ci/run

KINDS = ("eps", "x0", "v")
SCHEDULES = {"discrete": 1000, "continuous": None}
STEPS = 8  # teacher steps; the student takes 4


def setup(kind: str, schedule_kind: str):
    """(schedule, exact teacher Denoiser in `kind`, teacher grid [9], data x0 [64, 2], eps)."""
    schedule = make_schedule("cosine", num_steps=SCHEDULES[schedule_kind])
    teacher = Denoiser(MixtureNetwork(two_dim_mixture(), schedule, kind), schedule, kind)
    g = torch.Generator().manual_seed(0)
    x0, _ = two_dim_mixture().sample(64, g)
    eps = torch.randn(x0.shape, generator=g)
    return schedule, teacher, uniform_grid(schedule, STEPS), x0, eps


def noised(schedule, t, x0, eps):
    alpha, sigma = alpha_sigma(schedule, t, x0)
    return alpha * x0 + sigma * eps


def ddim(denoiser, x, schedule, times):
    """The DDIM sampler itself over explicit times."""
    grid = SamplingGrid.build(schedule, times)
    return SAMPLERS.get("ddim")(conditioned(denoiser, None), x, grid)


class Lookup(nn.Module):
    """A student "network" that outputs the given target whatever it is asked."""

    def __init__(self, output: torch.Tensor) -> None:
        super().__init__()
        self.output = output

    def forward(self, x, t_net, cond):
        return self.output


@pytest.mark.parametrize("schedule_kind", sorted(SCHEDULES))
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("i", range(STEPS // 2), ids=lambda i: f"step{i}")
def test_one_student_step_lands_where_two_teacher_steps_land(kind, schedule_kind, i):
    """Student step i goes t_2i -> t_2i+2 (the last one into clean data); the student's network
    outputs its parameterization's target for (x~, eps~), and the DDIM sampler's one step from
    it equals the sampler's two teacher steps. Tolerance: float32 rounding of eps (2^-24
    relative) reaches eps-prediction's x0 = (z - sigma eps) / alpha multiplied by sigma / alpha
    (2e4 at t_max), so it grows with sigma / alpha there; it stays 2e-5 elsewhere."""
    schedule, teacher, times, x0, eps = setup(kind, schedule_kind)
    t, t_mid, t_next = times[2 * i : 2 * i + 3]
    z_t = noised(schedule, t, x0, eps)
    two_steps = ddim(teacher, z_t, schedule, times[2 * i : 2 * i + 3])
    x_tilde = distillation_target(conditioned(teacher, None), z_t, t, t_mid, t_next, schedule)
    alpha, sigma = alpha_sigma(schedule, t, z_t)
    eps_tilde = target_eps(z_t, x_tilde, alpha, sigma)
    output = training_target(kind, x0=x_tilde, eps=eps_tilde, alpha=alpha, sigma=sigma)
    student = Denoiser(Lookup(output), schedule, kind)
    one_step = ddim(student, z_t, schedule, torch.stack([t, t_next]))
    atol = 2e-5 + 2**-24 * float(sigma.max() / alpha.max() * z_t.abs().max())
    torch.testing.assert_close(one_step, two_steps, atol=atol, rtol=1e-5)
    teacher_one_step = ddim(teacher, z_t, schedule, torch.stack([t, t_next]))
    assert (one_step - teacher_one_step).abs().max() > 10 * atol


def test_clean_end_target_is_the_teacher_two_step_sample():
    """t_next clean (sigma_next = 0, discrete t = -1): x~ = z_next, the teacher's sample."""
    schedule, teacher, times, x0, eps = setup("v", "discrete")
    assert float(schedule.sigma(times[-1])) == 0.0
    z_t = noised(schedule, times[-3], x0, eps)
    x_tilde = distillation_target(conditioned(teacher, None), z_t, *times[-3:], schedule)
    torch.testing.assert_close(x_tilde, ddim(teacher, z_t, schedule, times[-3:]))


def test_per_sample_times_equal_one_time_at_a_time():
    """Times given per sample [N] give each row what its own scalar time gives."""
    schedule, teacher, times, x0, eps = setup("eps", "continuous")
    i = torch.arange(len(x0)) % (STEPS // 2)  # [N] student step of each row
    t, t_mid, t_next = times[2 * i], times[2 * i + 1], times[2 * i + 2]
    z_t = noised(schedule, t, x0, eps)
    batched = distillation_target(conditioned(teacher, None), z_t, t, t_mid, t_next, schedule)
    for k in range(STEPS // 2):
        rows = i == k
        alone = distillation_target(
            conditioned(teacher, None), z_t[rows], *times[2 * k : 2 * k + 3], schedule
        )
        # batches of other sizes: float rounding apart; a row given another time: ~1e-1 apart
        torch.testing.assert_close(batched[rows], alone, rtol=1e-4, atol=1e-4)


class Recorder(nn.Module):
    """Outputs zeros and remembers the x_t it was given."""

    def forward(self, x, t_net, cond):
        self.seen = x.clone()
        return torch.zeros_like(x)


class PerfectStudent(nn.Module):
    """The student that has learnt the target: it computes x~ from its input with the teacher
    and outputs its parameterization's target."""

    def __init__(self, teacher: Denoiser, times: torch.Tensor) -> None:
        super().__init__()
        self.teacher, self.times = teacher, times

    def forward(self, x, t_net, cond):
        schedule, kind = self.teacher.schedule, self.teacher.parameterization
        t = t_net.double() if schedule.discrete else t_net.double() / 1000
        k = torch.tensor([int((self.times == s).nonzero()) for s in t])
        t_mid, t_next = self.times[k + 1], self.times[k + 2]
        x_tilde = distillation_target(
            conditioned(self.teacher, None), x, t, t_mid, t_next, schedule
        )
        alpha, sigma = alpha_sigma(schedule, t, x)
        eps = target_eps(x, x_tilde, alpha, sigma)
        return training_target(kind, x0=x_tilde, eps=eps, alpha=alpha, sigma=sigma)


def distillation_loss(schedule, teacher, times) -> DistillationLoss:
    kind = teacher.parameterization
    return DistillationLoss(schedule, kind, teacher=teacher, teacher_times=times)


@pytest.mark.parametrize("schedule_kind", sorted(SCHEDULES))
@pytest.mark.parametrize("kind", KINDS)
def test_loss_sees_z_t_and_is_zero_for_the_perfect_student(kind, schedule_kind):
    """The noised input DenoisingLoss builds from (x~, eps~) is z_t of the data; a student
    predicting x~ has zero loss, the teacher itself (one step where two were taken) does not."""
    schedule, teacher, times, x0, eps = setup(kind, schedule_kind)
    loss = distillation_loss(schedule, teacher, times)
    t = loss.sample_training_t(len(x0), generator=torch.Generator().manual_seed(1), device="cpu")
    recorder = Recorder()
    loss(recorder, x0, t, eps, None)
    torch.testing.assert_close(recorder.seen, noised(schedule, t, x0, eps), atol=1e-5, rtol=1e-5)
    assert float(loss(PerfectStudent(teacher, times), x0, t, eps, None)) < 1e-9
    assert float(loss(teacher.network, x0, t, eps, None)) > 1e-4


def test_training_times_are_the_student_grid_noisy_times():
    """t is drawn uniformly from t_0, t_2, ..., t_{2N-2}: never a teacher midpoint or clean."""
    schedule, teacher, times, _, _ = setup("v", "discrete")
    loss = distillation_loss(schedule, teacher, times)
    t = loss.sample_training_t(2000, generator=torch.Generator().manual_seed(0), device="cpu")
    values, counts = t.unique(return_counts=True)
    assert torch.equal(values.flip(0), times[:-1:2])
    assert counts.min() > 400


class LabelTeacher:
    """A teacher whose x0 is its label (0 for the null label), recording the labels it sees."""

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def __call__(self, x_t, t, cond):
        self.seen.append(cond.labels.clone())
        x0 = cond.labels.clamp(min=0).float().view(-1, 1).expand_as(x_t)
        return Prediction(x0=x0, eps=torch.zeros_like(x_t))


class ConditionRecorder(nn.Module):
    def forward(self, x, t_net, cond):
        self.labels = cond.labels.clone()
        return torch.zeros_like(x)


def test_teacher_sees_the_dropped_condition_the_student_sees():
    """Condition dropout reaches teacher and student alike, so a dropped (null) label learns the
    teacher's unconditional path and the student keeps one for classifier-free guidance."""
    schedule, _, times, x0, _ = setup("v", "discrete")
    teacher, student = LabelTeacher(), ConditionRecorder()
    loss = DistillationLoss(schedule, "v", teacher=teacher, teacher_times=times)
    state = SimpleNamespace(loss_fn=loss, forward=student, noise_offset=0.0, keep_hint=False)
    state.precision = resolve_precision("fp32", torch.device("cpu"))
    batch = MicroBatch(x0, Condition(labels=torch.arange(len(x0)) % 10))
    micro_batch_loss(state, batch, torch.Generator().manual_seed(0), cond_dropout=0.5)
    assert all(torch.equal(seen, student.labels) for seen in teacher.seen)
    assert (student.labels == NULL_LABEL).any() and (student.labels != NULL_LABEL).any()


@pytest.mark.parametrize("scale", [0.0, 1.0, 3.0])
def test_teacher_guidance_mixes_the_teacher_predictions(scale):
    """teacher_guidance w: x~ is built from D_u + w (D_c - D_u) of the teacher (1 = none)."""
    schedule, _, times, x0, _ = setup("v", "discrete")
    loss = DistillationLoss(
        schedule, "v", teacher=LabelTeacher(), teacher_times=times, teacher_guidance=scale
    )
    labels = torch.arange(len(x0)) % 10
    pred = loss._teacher_denoise(Condition(labels=labels))(x0, times[0])
    expected = scale * labels.float().view(-1, 1).expand_as(x0)  # D_u = 0, D_c = label
    torch.testing.assert_close(pred.x0, expected)


class TextTeacher:
    """A teacher whose x0 is the mean of each sample's text embedding."""

    def __call__(self, x_t, t, cond):
        x0 = cond.text.mean(dim=(1, 2)).view(-1, 1).expand_as(x_t)
        return Prediction(x0=x0, eps=torch.zeros_like(x_t))


def test_teacher_guidance_of_a_text_condition_is_against_the_empty_prompt():
    """A text-conditioned run (Stable Diffusion) is guided too: D_u is the teacher at the
    null text (the empty prompt's embedding), not left out."""
    schedule, _, times, x0, _ = setup("v", "discrete")
    null_text = torch.full((1, 3, 4), 0.5)
    loss = DistillationLoss(
        schedule,
        "v",
        teacher=TextTeacher(),
        teacher_times=times,
        teacher_guidance=3.0,
        null_text=null_text,
    )
    text = torch.arange(len(x0), dtype=torch.float32).view(-1, 1, 1).expand(-1, 3, 4)
    cond = Condition(text=text, text_mask=torch.ones(len(x0), 3, dtype=torch.bool))
    pred = loss._teacher_denoise(cond)(x0, times[0])
    expected = 0.5 + 3.0 * (text[:, 0, :1] - 0.5)  # D_u = 0.5, D_c = the sample's text
    torch.testing.assert_close(pred.x0, expected.expand_as(x0))
