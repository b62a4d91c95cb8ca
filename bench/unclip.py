"""unCLIP on captioned MNIST (issue 17's table): text-to-image class accuracy and FID of the full
unCLIP, of the decoder given the caption's text embedding (no prior), and of a class-conditional
run of the same network and budget (the ceiling); the LiT encoder's retrieval; variations.

python bench/unclip.py [--folder /tmp/difflab-bench/unclip] [--num 1000] [--lit-steps 300]
    [--prior-steps N] [--decoder-steps N] [--sample-steps K] [--threads 1] [--no-train]
    [--classifier-steps N] [--cache-dir DIR] [--dataset mnist|digits] [--quick]

Stages, each cached in FOLDER (a run resumes where it stopped and a finished one is kept): the
LiT image encoder against the packaged MiniLM (FOLDER/lit), the prior (unclip-prior-DATASET)
and the decoder (unclip-decoder-DATASET) on its embeddings, and the decoder's recipe with class
labels in place of the embedding (same network, steps, batch, LR, EMA, dropout). Sample i
(of --num) gets class i % 10, a held-out-template caption of it (cycled) and seed i:
(a) caption -> prior -> decoder (the cascade), (b) the caption's MiniLM embedding straight into
the decoder (Ramesh et al. 2022, Section 5.1), (c) the label into the class-conditional run;
variations decode the LiT embeddings of the first --num test images. Each is scored by the
cached evaluation classifier: accuracy on the requested class, FID in its features against the
test split. --sample-steps sets the image stages' DDIM steps (default: the recipes'); the
prior samples with its recipe's. Results: FOLDER/results/DATASET-NUM.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
from torch import Tensor

from difflab.data import ImageDataset, load_dataset, to_uint8
from difflab.data.captions import captions_for
from difflab.encoders import load_text_encoder
from difflab.encoders.lit_encoder import read_lit_meta
from difflab.evaluation import ClassifierFeatures, EvalOptions, evaluate
from difflab.evaluation.classifier_cache import cache_root, cached_classifier
from difflab.integrations.unclip.cascade import (
    Cascade,
    cascade_images,
    check_cascade,
    decode_embeddings,
    encode_prompts,
    stage_seeds,
)
from difflab.integrations.unclip.prior_data import to_unit
from difflab.lit import LiTSettings, cached_lit
from difflab.runs.image_embedding import recorded_encoder
from difflab.runs.load import LoadedRun, load_run
from difflab.sampling.generation import generate
from quality import DATA
from run_training import train_run

TEXT_ENCODER = "minilm"
QUICK_PRIOR = "{text_dim: 384, width: 16, depth: 1, num_heads: 2, freq_dim: 16}"
QUICK_UNET = "{base_channels: 8, norm_groups: 4, attention_resolutions: []}"
ROWS = {
    "unclip": "(a) caption -> prior -> decoder",
    "no_prior": "(b) caption's text embedding -> decoder (no prior)",
    "class": "(c) class label -> class-conditional run (ceiling)",
    "variations": "image variations: test image -> LiT embedding -> decoder",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", type=Path, default=Path("/tmp/difflab-bench/unclip"))
    p.add_argument("--dataset", choices=("mnist", "digits"), default="mnist")
    p.add_argument("--num", type=int, default=1000, help="samples per row")
    p.add_argument("--lit-steps", type=int, default=LiTSettings().steps)
    p.add_argument("--prior-steps", type=int, help="default: the prior recipe's")
    p.add_argument("--decoder-steps", type=int, help="default: the decoder recipe's (also (c)'s)")
    p.add_argument("--sample-steps", type=int, help="DDIM steps of the image stages")
    p.add_argument("--batch-size", type=int, default=250, help="images per sampling batch")
    p.add_argument("--classifier-steps", type=int, help="default: train_classifier's")
    p.add_argument("--cache-dir", help="classifier and reference cache (default: difflab's)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--no-train", action="store_true",
                   help="score the runs' newest checkpoints as they are (no training)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="a smoke test; numbers mean nothing")
    args = p.parse_args(argv)
    args.root = str(DATA / "mnist") if args.dataset == "mnist" else None
    args.quick_settings = []
    if args.quick:
        args.dataset, args.root, args.num, args.sample_steps = "digits", None, 6, 2
        args.lit_steps, args.prior_steps, args.decoder_steps = 2, 2, 2
        args.classifier_steps = args.classifier_steps or 5
    return args


# ----------------------------------------------------------------------------------------
# Training (cached in the folder)


def lit_settings(args: argparse.Namespace) -> LiTSettings:
    if args.quick:
        return LiTSettings(steps=args.lit_steps, batch_size=16, width=8)
    return LiTSettings(steps=args.lit_steps)


def lit_folder(args: argparse.Namespace) -> Path:
    """The LiT encoder of the dataset (trained and scored on first use), in FOLDER/lit."""
    text = load_text_encoder(TEXT_ENCODER)
    return cached_lit(args.dataset, args.root, text, lit_settings(args), args.folder)


def common(args: argparse.Namespace, steps: int | None) -> list[str]:
    """The overrides of every run: data root, steps, threads, no progress bar (--quick: small
    batches, one checkpoint at the end, no validation)."""
    out = ["train.progress=false", f"train.cpu_threads={args.threads}"]
    out += [f"data.root={args.root}"] if args.root else []
    out += [f"train.steps={steps}"] if steps is not None else []
    if args.quick:
        out += ["train.batch_size=16", f"train.checkpoint_every={steps}", "train.val_every=0"]
    return out


def run_name(kind: str, args: argparse.Namespace, steps: int | None) -> str:
    return f"{kind}-{args.dataset}" + (f"-{steps}" if steps is not None else "")


def prior_run(args: argparse.Namespace, lit: Path) -> Path:
    name = run_name("prior", args, args.prior_steps)
    if args.no_train:
        return args.folder / "runs" / name
    overrides = [*common(args, args.prior_steps), f"model.embedding.image_encoder={lit}"]
    overrides += [f"model.options={QUICK_PRIOR}", "sample.steps=2"] if args.quick else []
    runs = args.folder / "runs"
    return train_run(runs / name, f"unclip-prior-{args.dataset}", overrides)


def decoder_runs(args: argparse.Namespace, lit: Path) -> tuple[Path, Path]:
    """(the decoder on lit's embeddings, the same recipe with class labels instead)."""
    steps = args.decoder_steps
    names = run_name("decoder", args, steps), run_name("class", args, steps)
    if args.no_train:
        return args.folder / "runs" / names[0], args.folder / "runs" / names[1]
    overrides = [*common(args, steps), "train.sample_every=0", "train.val_every=0"]
    overrides += [f"model.options={QUICK_UNET}"] if args.quick else []
    recipe = f"unclip-decoder-{args.dataset}"
    decoder = [*overrides, f"model.embedding.image_encoder={lit}"]
    labels = [*overrides, "model.embedding.image_encoder=null", "model.class_conditional=true"]
    runs = args.folder / "runs"
    return train_run(runs / names[0], recipe, decoder), train_run(runs / names[1], recipe, labels)


# ----------------------------------------------------------------------------------------
# Sampling


def held_out_captions(test: ImageDataset, num: int) -> tuple[list[str], Tensor]:
    """(caption i, class i) for i < num: class i % classes, its held-out-template captions
    cycled (data/captions.py's "eval" split)."""
    captions = captions_for(test.class_names)
    k = captions.num_classes
    labels = torch.arange(num) % k
    texts = [captions.class_captions(c, "eval") for c in range(k)]
    return [texts[c][(i // k) % len(texts[c])] for i, c in enumerate(labels.tolist())], labels


def with_steps(run: LoadedRun, steps: int | None) -> LoadedRun:
    """The run sampling with `steps` sampler steps (None: its recipe's)."""
    if steps is not None:
        run.config.sample = dataclasses.replace(run.config.sample, steps=steps)
    return run


@torch.no_grad()
def no_prior_images(c: Cascade, prompts: list[str], batch_size: int) -> Tensor:
    """uint8 images, image i decoded from prompt i's pooled text embedding with seed i (the
    decoder's stage seed in the cascade, so (a) and (b) differ only in the embedding)."""
    out = []
    for start in range(0, len(prompts), batch_size):
        rows = list(range(start, min(len(prompts), start + batch_size)))
        text = encode_prompts(c.prior, [prompts[i] for i in rows], "cpu").embedding
        images = decode_embeddings(c.decoder, to_unit(text), stage_seeds(rows, 1), "cpu")
        out.append(to_uint8(images).cpu())
    return torch.cat(out)


@torch.no_grad()
def variation_images(decoder: LoadedRun, images: Tensor, batch_size: int) -> Tensor:
    """uint8 images, image i decoded from the decoder's encoder's embedding of images[i]."""
    encoder = recorded_encoder(decoder.image_encoder, decoder.embedding_dim, "decoder")
    embeddings = torch.cat([encoder.encode(b.float() / 127.5 - 1) for b in images.split(256)])
    return generate(decoder, num=len(images), embeddings=embeddings, batch_size=batch_size)[0]


def draw_rows(args: argparse.Namespace, runs: dict[str, Path], test: ImageDataset) -> dict:
    """{row: (uint8 images, requested labels, seconds)} of the four rows."""
    prompts, labels = held_out_captions(test, args.num)
    prior, decoder, labelled = (load_run(runs[k]) for k in ("prior", "decoder", "class"))
    cascade = Cascade(prior, with_steps(decoder, args.sample_steps))
    check_cascade(cascade, str(args.folder))
    draws = {
        "unclip": lambda: cascade_images(
            cascade, prompts, num=args.num, seed=0, batch_size=args.batch_size, device="cpu"
        ),
        "no_prior": lambda: no_prior_images(cascade, prompts, args.batch_size),
        "class": lambda: generate(
            with_steps(labelled, args.sample_steps),
            num=args.num,
            labels=labels.tolist(),
            batch_size=args.batch_size,
        )[0],
        "variations": lambda: variation_images(decoder, test.images[: args.num], args.batch_size),
    }
    out = {}
    for name, draw in draws.items():
        start = time.perf_counter()
        images = draw()
        wanted = test.labels[: args.num] if name == "variations" else labels
        out[name] = (images, wanted, time.perf_counter() - start)
        print(f"{name}: {len(images)} images in {out[name][2]:.0f} s", flush=True)
    return out


# ----------------------------------------------------------------------------------------
# Scoring and the table


def score_rows(args: argparse.Namespace, drawn: dict, train_split, test) -> dict:
    """{row: {accuracy, fid, num_samples, seconds}} by the cached evaluation classifier."""
    cache = cache_root(args.cache_dir)
    classifier, _, _ = cached_classifier(train_split, cache=cache, steps=args.classifier_steps)
    rows = {}
    for name, (images, labels, seconds) in drawn.items():
        result = evaluate(
            images,
            labels,
            reference=test,
            metrics=["fid", "accuracy"],
            extractor=ClassifierFeatures(classifier),
            classifier=classifier,
            cache_dir=cache / "reference",
            options=EvalOptions(),
        )
        rows[name] = {k: result[k] for k in ("accuracy", "fid", "num_samples")}
        rows[name]["seconds"] = seconds
    return rows


def table(result: dict) -> list[str]:
    """The markdown table of a result, then the LiT line and the issue's two targets."""
    rows, ceiling = result["rows"], result["rows"]["class"]["accuracy"]
    lines = [
        "| row | samples | class accuracy | FID (classifier features) | accuracy / (c)'s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, title in ROWS.items():
        r = rows[name]
        ratio = r["accuracy"] / ceiling if ceiling else float("nan")  # (c) may score 0
        cells = f"{r['num_samples']} | {r['accuracy']:.3f} | {r['fid']:.3f} | {ratio:.2f}"
        lines.append(f"| {title} | {cells} |")
    lit = result["lit"]
    lines.append(
        f"\nLiT image encoder ({lit['steps']} steps): held-out-template retrieval "
        f"{lit['retrieval_heldout']:.3f} (chance {lit['chance']:.3f})"
    )
    a, b = rows["unclip"], rows["no_prior"]
    beats = a["accuracy"] > b["accuracy"] and a["fid"] < b["fid"]
    share = a["accuracy"] / ceiling if ceiling else float("nan")
    lines.append(
        f"(a) beats (b) on accuracy and FID: {'yes' if beats else 'no'}; (a) reaches "
        f"{share:.0%} of (c)'s accuracy (target 90%)"
    )
    return lines


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    lit = lit_folder(args)
    prior = prior_run(args, lit)
    decoder, labelled = decoder_runs(args, lit)
    runs = {"prior": prior, "decoder": decoder, "class": labelled}
    train_split, test = (
        load_dataset(args.dataset, root=args.root, split=s) for s in ("train", "test")
    )
    drawn = draw_rows(args, runs, test)
    metrics = read_lit_meta(lit)["metrics"]
    result = {
        "dataset": args.dataset,
        "num": args.num,
        "sample_steps": args.sample_steps,
        "lit": {**metrics, "steps": args.lit_steps, "folder": str(lit)},
        "runs": {k: {"folder": str(v), "step": load_run(v).step} for k, v in runs.items()},
        "rows": score_rows(args, drawn, train_split, test),
    }
    path = args.folder / "results" / f"{args.dataset}-{args.num}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print("\n".join(table(result)))
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
