"""Classifier guidance on the digits model: class accuracy of samples with and without it.

python bench/classifier_guidance.py [--run RUN] [--num 1000] [--threshold off]
    [--cache /tmp/difflab-bench]

Samples are drawn unconditionally (CFG scale 0: the null label) or with a weak CFG scale, and
guided toward labels 0..9 (cycled) by a noisy classifier (`difflab sample --classifier`);
accuracy is measured by an independent classifier trained on clean digits. Static thresholding
(the default with a classifier) clips the guided x0; `--threshold off` shows why (bench/README.md).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import sampling_setup as setup
from difflab.evaluation import classifier_accuracy
from difflab.sampling.generation import generate

SCALES = (0.0, 1.0, 2.0, 4.0, 8.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    setup.add_common_arguments(parser)
    parser.add_argument("--cfg", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--scales", type=float, nargs="+", default=list(SCALES))
    parser.add_argument("--sampler", default="ddim")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument(
        "--threshold",
        choices=("static", "dynamic", "off"),
        help="x0 thresholding (default: static where the classifier guides, as in difflab sample)",
    )
    args = parser.parse_args()
    data, test, run, evaluator = setup.prepare(args)
    noisy = setup.noisy_classifier_dir(run, data, args.cache)
    base = replace(
        run.config.sample, sampler=args.sampler, steps=args.steps, threshold=args.threshold
    )
    print(f"{args.num} samples, {args.sampler} {args.steps} steps, threshold {args.threshold}")
    print("| CFG scale | classifier scale | accuracy | seconds |")
    print("| --- | --- | --- | --- |")
    for cfg in args.cfg:
        for scale in args.scales:
            sample = replace(base, guidance=cfg)
            if scale > 0:
                sample = replace(sample, classifier=str(noisy), classifier_scale=scale)
            start = time.perf_counter()
            images, labels = generate(
                run, num=args.num, sample=sample, batch_size=500, device=args.device
            )
            seconds = time.perf_counter() - start
            accuracy = classifier_accuracy(evaluator, images, labels)
            print(f"| {cfg:g} | {scale:g} | {accuracy:.3f} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
