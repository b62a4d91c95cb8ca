"""Every registered hint trains a ControlNet on a UNet and on a DiT, in pixel and in latent runs,
and a stopped run resumes to the same losses and weights as one that never stopped (tiny
networks on 16x16 rendered shapes, whose depth and class maps the map-reading hints need).

The default run covers each hint once and each network and space in it; the rest of the matrix
is marked slow."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from difflab.config.recipes import load_config
from difflab.data import HINTS
from difflab.runs.checkpoint import latest_checkpoint, load_checkpoint
from difflab.runs.load import load_run
from difflab.runs.metrics import read_metrics
from difflab.sampling.generation import generate
from difflab.sampling.hints import hint_shape
from difflab.training.loop import train

pytestmark = pytest.mark.filterwarnings("ignore:model.network=dit-tiny replaces")
TINY = str(Path(__file__).with_name("tiny.yaml"))
DATA = ["data.dataset=shapes", "data.options={resolution: 16, count: 8}", "data.val_split=null"]
QUIET = ["train.sample_every=0", "train.val_every=0", "train.eval_every=0", "train.batch_size=4"]
NETWORKS = {
    "unet": ["model.network=unet-tiny"],  # tiny.yaml's options
    "dit": ["model.network=dit-tiny", "model.options={hidden_size: 16, num_heads: 2}"],
}
HINT_OPTIONS = {"segmentation": "{source: labels}", "scribble": "{max_radius: 2}"}
# one combination per hint, every network and space among them: the default run
FAST = {
    ("blur", "unet", "latent"),
    ("canny", "dit", "pixel"),
    ("hough", "unet", "pixel"),
    ("scribble", "dit", "latent"),
    ("segmentation", "unet", "latent"),
    ("depth", "dit", "pixel"),
    ("normal", "dit", "latent"),
}
MATRIX = [
    pytest.param(*combo, marks=() if combo in FAST else pytest.mark.slow)
    for combo in itertools.product(HINTS.names(), NETWORKS, ("pixel", "latent"))
]


def test_the_fast_subset_covers_every_hint():
    assert {hint for hint, _, _ in FAST} == set(HINTS.names())
    assert {net for _, net, _ in FAST} == set(NETWORKS) and len({s for *_, s in FAST}) == 2


def _config(root: Path, name: str, net: str, vae: Path | None, *extra: str):
    overrides = [f"run.root={root}", f"run.name={name}", *DATA, *QUIET, *NETWORKS[net]]
    latent = [f"model.latent.vae={vae}"] if vae is not None else []
    return load_config(TINY, [*overrides, *latent, *extra])


@pytest.fixture(scope="module")
def vae(tmp_path_factory) -> Path:
    pytest.importorskip("diffusers", reason="latent runs need diffusers (the sd extra)")
    from latents.tiny_vae import save_tiny_vae

    return save_tiny_vae(tmp_path_factory.mktemp("weights") / "vae")


@pytest.fixture(scope="module")
def base_runs(tmp_path_factory):
    """The base run of (network, space), trained one step on first use."""
    root, made = tmp_path_factory.mktemp("bases"), {}

    def base(net: str, vae: Path | None) -> Path:
        key = (net, vae is not None)
        if key not in made:
            config = _config(root, f"{net}-{key[1]}", net, vae, "train.steps=1")
            made[key] = train(config, tensorboard=False)
        return made[key]

    return base


def _losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir) if "loss" in r]


@pytest.mark.parametrize(("hint", "net", "space"), MATRIX)
def test_controlnet_trains_and_resumes_exactly(hint, net, space, base_runs, tmp_path, request):
    vae = request.getfixturevalue("vae") if space == "latent" else None
    cn = [f"model.controlnet.base_run={base_runs(net, vae)}", f"model.controlnet.hint={hint}"]
    cn += [f"model.controlnet.hint_options={HINT_OPTIONS[hint]}"] if hint in HINT_OPTIONS else []
    cn += ["train.steps=2", "train.checkpoint_every=1", "data.flip=true"]
    straight = train(_config(tmp_path, "straight", net, vae, *cn), tensorboard=False)
    config = _config(tmp_path, "resumed", net, vae, *cn)
    stopped = train(config, tensorboard=False, stop_at=1)
    config.train.resume = str(stopped)
    resumed = train(config, tensorboard=False)
    assert len(_losses(straight)) == 2 and _losses(resumed) == _losses(straight)
    expected = load_checkpoint(latest_checkpoint(straight))
    got = load_checkpoint(latest_checkpoint(resumed))
    assert all(torch.equal(got.model[k], v) for k, v in expected.model.items())
    moved = [v for k, v in expected.model.items() if "after_proj" in k or "zero_conv" in k]
    assert moved and any(v.abs().sum() > 0 for v in moved)  # the zero outputs trained
    run = load_run(straight)  # samples under image-sized hints, decoded in a latent run
    hints = torch.rand(1, *hint_shape(run.config, run.image_shape)) * 2 - 1
    images, _ = generate(run, num=2, hints=hints)
    assert images.shape == (2, 3, 16, 16) and images.dtype == torch.uint8


def test_a_latent_runs_hints_turn_with_its_latents(base_runs, vae, tmp_path):
    """With data.flip, each sample's hint is its image's (here exact depth), mirrored exactly
    when its latents are the mirrored image's."""
    from difflab.training.session import open_training_run

    cn = [f"model.controlnet.base_run={base_runs('unet', vae)}", "model.controlnet.hint=depth"]
    s = open_training_run(_config(tmp_path, "flip", "unet", vae, *cn, "data.flip=true"))
    index = torch.arange(8)
    batch = s.data.take(index, torch.Generator().manual_seed(0))
    both = s.data.images[index]  # [8, 2, c, h, w]: the latents of each image and of its mirror
    mirrored = (batch.x0 == both[:, 1]).flatten(1).all(1)
    assert bool(((batch.x0 == both[:, 0]).flatten(1).all(1) | mirrored).all())
    assert 0 < int(mirrored.sum()) < 8
    depth = 1 - 2 * s.data.maps["depth"][index]  # the depth hint of the unflipped images
    expected = torch.where(mirrored.view(-1, 1, 1, 1), depth.flip(-1), depth)
    torch.testing.assert_close(batch.cond.hint, expected)
    assert batch.cond.hint.shape == (8, 1, 16, 16) and batch.x0.shape[-1] == 8
