"""A prior's training run: its pairs in micro-batches, resume exact, EMA, report."""

from pathlib import Path

import pytest
import torch

from difflab.config.recipes import load_config
from difflab.integrations.unclip import pairs as pair_source
from difflab.integrations.unclip.prior_data import PairData, embedding_scale
from difflab.runs import image_embedding
from difflab.runs.checkpoint import latest_checkpoint, load_checkpoint
from difflab.runs.files import read_model_info
from difflab.runs.load import load_run
from difflab.runs.metrics import read_metrics
from difflab.training.loop import train
from difflab.training.session import open_training_run

from .prior_fixtures import E, random_pairs

TINY = [
    "model.options={text_dim: 6, width: 16, depth: 2, num_heads: 2, freq_dim: 16}",
    "model.embedding.image_encoder=unused",
    "train.batch_size=4",
    "train.log_every=1",
    "train.val_every=2",
    "train.checkpoint_every=2",
    "train.ema_start=1",
    "train.cond_dropout=0.5",
    "train.progress=false",
    "train.lr_schedule=cosine",
]


@pytest.fixture(autouse=True)
def pairs(monkeypatch):
    """Encoded pairs stand in for a captioned dataset and its encoders."""
    made = {"train": random_pairs(12, 0), "test": random_pairs(6, 1)}
    monkeypatch.setattr(
        pair_source, "load_pairs", lambda config, split, device, encoder: made[split]
    )
    return made


def config(tmp_path: Path, *extra: str):
    return load_config("unclip-prior-digits", [*TINY, f"run.root={tmp_path}", *extra])


def losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir) if "loss" in r]


def test_resume_gives_bit_identical_losses_and_weights(tmp_path):
    straight = train(config(tmp_path, "run.name=a", "train.steps=6"), tensorboard=False)
    first = train(config(tmp_path, "run.name=b", "train.steps=6"), tensorboard=False, stop_at=3)
    resumed = config(tmp_path, "run.name=b", "train.steps=6", f"train.resume={first}")
    assert train(resumed, tensorboard=False) == first
    assert len(losses(straight)) == 6
    assert losses(first) == losses(straight)
    a, b = (load_checkpoint(latest_checkpoint(run)) for run in (straight, first))
    for name in a.model:
        assert torch.equal(a.model[name], b.model[name]) and torch.equal(a.ema[name], b.ema[name])
    assert any(not torch.equal(a.model[n], a.ema[n]) for n in a.model)  # EMA lags the weights
    assert [r["step"] for r in read_metrics(straight) if "val_loss" in r] == [2, 4, 6]
    assert (straight / "report.html").is_file()


def test_micro_batches_are_scaled_embeddings_with_their_text(tmp_path, pairs):
    run = open_training_run(config(tmp_path, "train.steps=1"))
    assert run.state.cond_dropout == 0.5  # text dropout, for classifier-free guidance
    run_dir = train(config(tmp_path, "train.steps=1"), tensorboard=False)
    loaded = load_run(run_dir)
    assert loaded.image_shape == (E, 1, 1)
    assert loaded.denoiser.parameterization == "x0"
    p = pairs["train"]
    data = PairData(p, batch_size=4, seed=0, device=torch.device("cpu"))
    index = torch.tensor([2, 3, 4, 3])
    batch = data.take(index, torch.Generator().manual_seed(0))
    torch.testing.assert_close(batch.x0, p.image[index] * embedding_scale(E))
    rows = [int((p.pooled == e).all(dim=1).nonzero()) for e in batch.cond.embedding]
    assert rows[0] == 2 and rows[2] == 4  # even images: their one caption
    assert rows[1] in (3, 4) and rows[3] in (3, 4)
    assert torch.equal(batch.cond.text, p.tokens[rows])
    assert torch.equal(batch.cond.text_mask, p.mask[rows])
    draws = [data.take(index, torch.Generator().manual_seed(s)).cond.embedding for s in range(20)]
    assert {d[1, 0].item() for d in draws} == {p.pooled[3, 0].item(), p.pooled[4, 0].item()}
    assert {d[0, 0].item() for d in draws} == {p.pooled[2, 0].item()}  # never past counts


@pytest.mark.parametrize(
    "main_rank, order", [(True, ["resolve", "barrier"]), (False, ["barrier", "resolve"])]
)
def test_rank_0_resolves_the_image_encoder_before_the_others(
    tmp_path, monkeypatch, main_rank, order
):
    """Under torchrun, rank 0 resolves model.embedding.image_encoder ('lit' may train it into
    the cache) and the other ranks wait at a barrier before they read it."""
    calls = []
    monkeypatch.setattr(image_embedding, "is_main", lambda: main_rank)
    monkeypatch.setattr(image_embedding, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(
        image_embedding, "encoder_folder", lambda config: calls.append("resolve") or tmp_path
    )
    run = open_training_run(config(tmp_path, "train.steps=1"))
    assert calls[:2] == order
    assert calls.count("resolve") == 1
    assert read_model_info(run.run_dir)["image_encoder"] == str(tmp_path)  # model.json
