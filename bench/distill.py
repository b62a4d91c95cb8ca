"""Progressive distillation on the digits model: FID (difflab classifier features) and class
accuracy of the teacher's DDIM against its distilled students, at the same step counts.

python bench/distill.py [--run RUN] [--num 1000] [--teacher-steps 64] [--students 8 4 2 1]
    [--steps-per-round 300] [--batch-size 64] [--lr 5e-4] [--seed 0] [--cache /tmp/difflab-bench]
    [--quick]

The students are one chain of halving rounds (Salimans & Ho 2022, Algorithm 2) from the
teacher's DDIM at --teacher-steps, run in stages that each end at a listed student (difflab
distill to 8 steps, then that run to 4, to 2, to 1), each stage's run kept beside the teacher
run (CACHE/runs/ by default) and reused when the script runs again. Every sample uses the
run's own sampling settings (DDIM, its CFG scale) at the row's step count, image i with seed
--seed + i. FID compares with the digits train split in the feature space of an evaluation
classifier trained on clean digits; accuracy is that classifier's agreement with the requested
labels. --quick is a seconds-long smoke test (a 2-step teacher and classifier, 2 steps a
round): its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import sampling_setup as setup
from difflab.distillation import DistillConfig, distill
from difflab.evaluation import ClassifierFeatures, evaluate
from difflab.runs.load import LoadedRun, load_run
from difflab.sampling.generation import generate


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    setup.add_common_arguments(parser)
    parser.add_argument("--teacher-steps", type=int, default=64)
    parser.add_argument("--students", type=int, nargs="+", default=[8, 4, 2, 1])
    parser.add_argument("--steps-per-round", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=DistillConfig.lr)
    parser.add_argument("--seed", type=int, default=0, help="image i uses seed + i")
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.num, args.teacher_steps, args.students = 20, 8, [4, 2]
        args.steps_per_round, args.batch_size = 2, 16
    return args


def distilled_chain(teacher_dir: Path, args: argparse.Namespace) -> dict[int, Path]:
    """{student steps: run folder}: a distill stage from the previous run to each student."""
    runs, previous, steps = {}, teacher_dir, args.teacher_steps
    for stage, target in enumerate(sorted(args.students, reverse=True)):
        name = f"digits-distilled-{args.teacher_steps}-k{args.steps_per_round}-to{target}"
        run_dir = teacher_dir.parent / name
        if not (run_dir / "distill.yaml").is_file():
            d = DistillConfig(
                teacher_steps=steps,
                target_steps=target,
                steps_per_round=args.steps_per_round,
                batch_size=args.batch_size,
                lr=args.lr,
                seed=stage,
                device="cpu",
                name=name,
            )
            started = time.perf_counter()
            run_dir = distill(previous, d, tensorboard=False)
            print(f"distilled {steps} -> {target} steps in {time.perf_counter() - started:.0f} s")
        runs[target], previous, steps = run_dir, run_dir, target
    return runs


def score(run: LoadedRun, steps: int, args: argparse.Namespace, evaluator, metrics) -> str:
    """'FID | accuracy' of args.num DDIM samples at `steps` with the run's sampling settings."""
    sample = replace(run.config.sample, sampler="ddim", steps=steps, grid="uniform", eta=0.0)
    images, labels = generate(run, num=args.num, sample=sample, seed=args.seed, batch_size=args.num)
    result = evaluate(images, labels, metrics=["fid", "accuracy"], classifier=evaluator, **metrics)
    return f"{result['fid']:.2f} | {result['accuracy']:.3f}"


def main(argv: list[str] | None = None) -> list[str]:
    """Print the table; return its rows."""
    args = parse_args(argv)
    if args.quick:
        setup.seed_quick_cache(args.cache)
    data, test, teacher, evaluator = setup.prepare(args)
    teacher_dir = args.run or args.cache / "runs" / "digits"  # where prepare() trained it
    metrics = dict(reference=data, extractor=ClassifierFeatures(evaluator))
    metrics["cache_dir"] = args.cache / "fid-stats"
    runs = distilled_chain(teacher_dir, args)
    guidance = teacher.config.sample.guidance
    print(f"{args.num} samples, DDIM (uniform grid), CFG scale {guidance:g}, labels 0-9 cycled")
    reference = score(teacher, args.teacher_steps, args, evaluator, metrics)
    print(f"teacher at {args.teacher_steps} steps: FID | accuracy {reference}")
    print("| steps | teacher FID | teacher accuracy | student FID | student accuracy |")
    print("| --- | --- | --- | --- | --- |")
    rows = []
    for steps in sorted(args.students, reverse=True):
        student = score(load_run(runs[steps]), steps, args, evaluator, metrics)
        rows.append(f"| {steps} | {score(teacher, steps, args, evaluator, metrics)} | {student} |")
        print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    main()
