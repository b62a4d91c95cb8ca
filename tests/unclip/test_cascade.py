"""unCLIP's cascade on tiny runs: prompt -> prior -> decoder -> upsampler shapes, seeds per
image, the cascade folder's file and the stages' fit checked with one-line errors.

The decoder here is an embedding-conditioned unet-tiny built in memory (the cascade through
`difflab sample --cascade` with a trained decoder run: test_prior_clip_folder.py)."""

import dataclasses
from pathlib import Path

import pytest
import torch

from difflab.cli.main import main
from difflab.config.recipes import load_config
from difflab.core.errors import ConfigError
from difflab.encoders import TextEncoding
from difflab.integrations.unclip import cascade as cascade_module
from difflab.integrations.unclip import pairs as pair_source
from difflab.integrations.unclip.cascade import Cascade, cascade_images, check_cascade, read_cascade
from difflab.networks import build_network
from difflab.parameterization import Denoiser
from difflab.runs.load import LoadedRun, load_run
from difflab.schedules import make_schedule
from difflab.training.loop import train

from .prior_fixtures import D, E, random_pairs

PRIOR = [
    "model.options={text_dim: 6, max_text_tokens: 8, width: 16, depth: 1, num_heads: 2, "
    "freq_dim: 16}",
    "model.embedding.image_encoder=unused",
    "train.batch_size=4",
    "train.steps=1",
    "train.val_every=0",
    "train.progress=false",
    "sample.steps=2",
]
UPSAMPLER = [
    "model.options={base_channels: 8, norm_groups: 4}",
    "train.batch_size=4",
    "train.steps=1",
    "train.sample_every=0",
    "train.val_every=0",
    "train.progress=false",
    "sample.steps=2",
]


class WordEncoder:
    """Token j of a caption = len(word j) in D values; pooled: a unit vector of E values."""

    def to(self, device):
        return self

    def encode(self, texts):
        words = [t.split() for t in texts]
        length = max(map(len, words))
        tokens = torch.zeros(len(texts), length, D)
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for i, ws in enumerate(words):
            mask[i, : len(ws)] = True
            tokens[i, : len(ws)] = torch.tensor([float(len(w)) for w in ws])[:, None]
        pooled = torch.nn.functional.normalize(tokens.sum(1)[:, :1] + torch.arange(E), dim=1)
        return TextEncoding(tokens, mask, pooled)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny prior and upsampler run (one step each) and a digits run (no embedding)."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            pair_source, "load_pairs", lambda config, split, device, encoder: random_pairs(8, 0)
        )
        prior = train(
            load_config("unclip-prior-digits", [*PRIOR, f"run.root={root}"]), tensorboard=False
        )
    up = train(load_config("upsampler-digits", [*UPSAMPLER, f"run.root={root}"]), tensorboard=False)
    tiny = str(Path(__file__).parents[1] / "training" / "tiny.yaml")
    digits = train(
        load_config(
            tiny, [f"run.root={root}", "train.steps=1", "train.sample_every=0", "train.val_every=0"]
        ),
        tensorboard=False,
    )
    return {"prior": prior, "upsampler": up, "digits": digits}


@pytest.fixture(autouse=True)
def words(monkeypatch):
    monkeypatch.setattr(cascade_module, "load_text_encoder", lambda name, path: WordEncoder())


def decoder(encoder: str, size: int = 8, embedding_dim: int = E) -> LoadedRun:
    """An embedding-conditioned unet-tiny of size x size grey images, perturbed off zero."""
    net = build_network(
        "unet-tiny",
        in_channels=1,
        image_size=size,
        num_classes=None,
        options={"base_channels": 8, "norm_groups": 4},
        embedding_dim=embedding_dim,
    )
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    config = load_config("digits", ["sample.steps=2", "sample.guidance=2.0"])
    denoiser = Denoiser(net, make_schedule("cosine"), "v").eval()
    return LoadedRun(
        config, denoiser, 0, (1, size, size), 0, embedding_dim=embedding_dim, image_encoder=encoder
    )


def test_cascade_shapes_end_to_end(runs):
    prior, up = load_run(runs["prior"]), load_run(runs["upsampler"])
    full = Cascade(prior, decoder(prior.image_encoder), up)
    prompts = ["a one", "the digit two", "a handwritten seven"]
    images = cascade_images(full, prompts, num=4, seed=3, batch_size=3, device="cpu")
    assert images.shape == (4, 1, 16, 16) and images.dtype == torch.uint8
    alone = cascade_images(full, prompts[:1], num=1, seed=6, batch_size=1, device="cpu")
    assert (alone.int() - images[3:].int()).abs().max() <= 1  # seed + i, whatever the batch
    two = Cascade(prior, full.decoder)
    assert cascade_images(two, prompts, num=2, seed=0, batch_size=2, device="cpu").shape == (
        2,
        1,
        8,
        8,
    )


def test_stages_that_do_not_fit_are_refused(runs):
    prior, up = load_run(runs["prior"]), load_run(runs["upsampler"])
    encoder = prior.image_encoder
    check_cascade(Cascade(prior, decoder(encoder), up), "f")
    with pytest.raises(ConfigError, match="embeddings of 8 values, the decoder takes "):
        check_cascade(Cascade(prior, decoder(encoder, embedding_dim=4), up), "f")
    with pytest.raises(ConfigError, match=r"makes images \(1, 16, 16\), the upsampler takes"):
        check_cascade(Cascade(prior, decoder(encoder, size=16), up), "f")
    with pytest.raises(ConfigError, match="must have model.network unclip-prior"):
        check_cascade(Cascade(up, decoder(encoder), up), "f")
    with pytest.raises(ConfigError, match="image encoder .*unused, the decoder on those of /x"):
        check_cascade(Cascade(prior, decoder("/x"), up), "f")


def test_cascade_file_names_the_runs_relative_to_its_folder(tmp_path):
    (tmp_path / "cascade.yaml").write_text("prior: p\ndecoder: /abs/d\n")
    assert read_cascade(tmp_path) == {"prior": tmp_path / "p", "decoder": Path("/abs/d")}
    for text, message in [
        ("prior: p\n", "key 'decoder' .* is missing"),
        ("prior: p\ndecoder: d\nupscaler: u\n", "unknown key 'upscaler'"),
        ("prior: p\ndecoder: [d]\n", "key 'decoder' must be a run folder"),
    ]:
        (tmp_path / "cascade.yaml").write_text(text)
        with pytest.raises(ConfigError, match=message):
            read_cascade(tmp_path)
    with pytest.raises(ConfigError, match="no cascade.yaml"):
        read_cascade(tmp_path / "nothing")


def test_cli_cascade_refuses_a_decoder_without_embeddings(runs, tmp_path, capsys):
    """Through `difflab sample --cascade`: the runs are loaded and checked (a digits run is no
    decoder), before anything is drawn."""
    (tmp_path / "cascade.yaml").write_text(
        f"prior: {runs['prior']}\ndecoder: {runs['digits']}\nupsampler: {runs['upsampler']}\n"
    )
    out = tmp_path / "out.png"
    code = main(
        [
            "sample",
            "--prompt",
            "a one",
            "--cascade",
            str(tmp_path),
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err
    assert code != 0 and "decoder takes embedding_dim=0" in err and not out.exists()
    code = main(["sample", "--cascade", str(tmp_path), "--out", str(out)])
    assert code != 0 and "--cascade needs --prompt" in capsys.readouterr().err


def test_prior_and_upsampler_runs_alone_point_to_the_cascade(runs, tmp_path, capsys):
    for run in (runs["prior"], runs["upsampler"]):
        code = main(["sample", str(run), "--prompt", "a one", "--out", str(tmp_path / "o.png")])
        assert code != 0 and "--cascade FOLDER" in capsys.readouterr().err


def test_stages_get_unit_embeddings_and_clamped_images(runs, monkeypatch):
    """The decoder sees unit image embeddings (the prior's x0 is sqrt(E) times one), the
    upsampler the decoder's images in [-1, 1]: what their training saw."""
    seen = {}
    decode, upsample = cascade_module.decode_embeddings, cascade_module.upsample

    def decode_spy(run, embedding, *args):
        seen["embedding"] = embedding
        return decode(run, embedding, *args)

    def upsample_spy(denoiser, low, **kwargs):
        seen["low"] = low
        return upsample(denoiser, low, **kwargs)

    monkeypatch.setattr(cascade_module, "decode_embeddings", decode_spy)
    monkeypatch.setattr(cascade_module, "upsample", upsample_spy)
    prior = load_run(runs["prior"])
    loud = decoder(prior.image_encoder)
    loud = dataclasses.replace(
        loud, config=load_config("digits", ["sample.steps=1", "sample.guidance=50"])
    )
    full = Cascade(prior, loud, load_run(runs["upsampler"]))
    cascade_images(full, ["a one"], num=2, seed=0, batch_size=2, device="cpu")
    assert seen["low"].abs().max() <= 1.0
    torch.testing.assert_close(seen["embedding"].norm(dim=1), torch.ones(2))
