"""unCLIP's stages under torchrun (2 processes, gloo) train what 1 process trains: the prior on
(caption, image embedding) pairs from a tiny random CLIP folder, whose micro-batches draw
captions and drop text for the whole global batch before each rank takes its part, the decoder
on that folder's image embeddings, and the upsampler, whose noise augmentation is drawn
likewise; in float64, with 2 accumulated micro-batches, EMA, validation and checkpoints every
2 of 4 steps."""

import pytest
from dist_runs import (
    TOLERANCE,
    loss_difference,
    losses,
    max_relative_difference,
    torchrun,
    weights,
)

from difflab.config.recipes import load_config
from difflab.training.loop import train
from encoders.tiny_clip import save_tiny_clip  # tests/encoders

pytestmark = [pytest.mark.numerics, pytest.mark.slow]

COMMON = [
    "run.name=dist",
    "train.steps=4",
    "train.batch_size=8",
    "train.grad_accum=2",
    "train.lr=1e-3",
    "train.ema_decay=0.5",
    "train.ema_start=0",
    "train.log_every=1",
    "train.val_every=4",
    "train.checkpoint_every=2",
    "train.progress=false",
    "train.cpu_threads=1",
    "train.precision=fp64",
    "train.compile=off",
    "sample.steps=2",
]
UPSAMPLER = ["model.options={base_channels: 8, norm_groups: 4}", "train.sample_every=4"]
DECODER = [
    "model.options={base_channels: 8, norm_groups: 4, attention_resolutions: []}",
    "train.sample_every=4",
]


def prior_overrides(clip) -> list[str]:
    return [
        "model.embedding.text_encoder=clip",
        f"model.embedding.text_encoder_path={clip}",
        f"model.embedding.image_encoder={clip}",
        "model.options={text_dim: 16, max_text_tokens: 16, width: 16, depth: 1, num_heads: 2}",
        "train.cond_dropout=0.5",
    ]


def one_and_two(root, recipe: str, overrides: list[str]):
    """(1-process run, 2-process run) of recipe with COMMON and overrides."""
    one = train(
        load_config(recipe, [*COMMON, *overrides, f"run.root={root / 'one'}"]), tensorboard=False
    )
    torchrun("train", recipe, *COMMON, *overrides, f"run.root={root / 'two'}")
    return one, root / "two" / "dist"


@pytest.mark.parametrize("stage", ["prior", "decoder", "upsampler"])
def test_two_processes_train_the_stage_as_one(stage, tmp_path):
    clip = save_tiny_clip(tmp_path / "clip")
    overrides = {
        "prior": prior_overrides(clip),
        "decoder": [*DECODER, f"model.embedding.image_encoder={clip}"],
        "upsampler": UPSAMPLER,
    }[stage]
    recipe = {"prior": "unclip-prior-digits", "decoder": "unclip-decoder-digits"}
    one, two = one_and_two(tmp_path, recipe.get(stage, "upsampler-digits"), overrides)
    assert list(losses(two)) == [1, 2, 3, 4]
    assert loss_difference(losses(one), losses(two)) < TOLERANCE
    for step in (2, 4):
        assert max_relative_difference(weights(one, step), weights(two, step)) < TOLERANCE
    assert max_relative_difference(weights(one, 2), weights(one, 4)) > 1e-3  # not vacuous
