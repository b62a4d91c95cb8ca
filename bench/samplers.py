"""Sampler comparison on a trained run (default: the digits model): FID (difflab classifier
features) and class accuracy at 10, 20, 50 and 100 denoiser calls for every registered sampler.

python bench/samplers.py [--run RUN] [--root DATA] [--num 1000] [--grid uniform]
    [--device cpu|cuda] [--cache /tmp/difflab-bench]

Steps = calls / calls per step: heun and dpmpp-2s call the denoiser twice per step (their last
step, into clean data, once; heun also once on a step with s / s_next > max_ratio), the others
once; the calls actually made are counted and printed.
FID compares with the run's training split in the feature space of an evaluation classifier
trained on its clean images; accuracy is that classifier's agreement with the requested labels.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import sampling_setup as setup
from difflab.evaluation import ClassifierFeatures, evaluate
from difflab.samplers import SAMPLERS
from difflab.sampling.generation import generate

CALLS = (10, 20, 50, 100)
TWO_CALLS_PER_STEP = ("heun", "dpmpp-2s")


class CallCounter:
    """Counts forward calls of the network (one per denoiser call, CFG halves batched)."""

    def __init__(self, network) -> None:
        self.count = 0
        network.register_forward_hook(self.hook)

    def hook(self, module, inputs, output) -> None:
        self.count += 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    setup.add_common_arguments(parser)
    parser.add_argument("--grid", default="uniform")
    parser.add_argument("--sigma-max", type=float, help="karras grid's largest sigma / alpha")
    parser.add_argument("--samplers", nargs="+", default=SAMPLERS.names())
    parser.add_argument("--calls", type=int, nargs="+", default=list(CALLS))
    args = parser.parse_args(argv)
    data, test, run, evaluator = setup.prepare(args)
    extractor = ClassifierFeatures(evaluator)
    metrics = dict(reference=data, extractor=extractor, cache_dir=args.cache / "fid-stats")
    floor = evaluate(test.images, test.labels, metrics=["fid"], **metrics)["fid"]
    print(f"FID of {test.name}/{test.split} ({len(test)} images) vs {data.split}: {floor:.2f}")
    counter = CallCounter(run.denoiser.network)
    base = replace(run.config.sample, grid=args.grid, sigma_max=args.sigma_max)
    grid = f"{args.grid} (sigma_max {args.sigma_max})"
    print(f"{args.num} samples, grid {grid}, CFG scale {base.guidance:g}, labels 0-9 cycled")
    print("| sampler | calls | steps | FID | accuracy | seconds |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.samplers:
        for calls in args.calls:
            steps = calls // 2 if name in TWO_CALLS_PER_STEP else calls
            counter.count = 0
            start = time.perf_counter()
            sample = replace(base, sampler=name, steps=steps)
            images, labels = generate(
                run, num=args.num, sample=sample, batch_size=args.num, device=args.device
            )
            seconds = time.perf_counter() - start
            result = evaluate(
                images, labels, metrics=["fid", "accuracy"], classifier=evaluator, **metrics
            )
            print(
                f"| {name} | {counter.count} | {steps} | {result['fid']:.2f} | "
                f"{result['accuracy']:.3f} | {seconds:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
