"""Train the evaluation classifier on MNIST and print its test accuracy and timings.

python bench/classifier_mnist.py [--root ../shared/data/mnist] [--steps N] [--device cpu]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from difflab.data import load_dataset
from difflab.evaluation import classifier_accuracy, save_classifier, train_classifier

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--steps", type=int, help="default: train_classifier's")
    parser.add_argument("--batch-size", type=int, help="default: train_classifier's")
    parser.add_argument("--lr", type=float, help="default: train_classifier's")
    parser.add_argument("--width", type=int, help="default: train_classifier's")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--save", type=Path, default=None, help="folder to save the classifier")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    train = load_dataset("mnist", root=args.root, split="train")
    test = load_dataset("mnist", root=args.root, split="test")
    start = time.perf_counter()
    chosen = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "width": args.width,
    }
    classifier = train_classifier(
        train, device=args.device, **{k: v for k, v in chosen.items() if v is not None}
    )
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    accuracy = classifier_accuracy(classifier, test.images, test.labels, device=args.device)
    eval_s = time.perf_counter() - start
    print("| dataset | options | width | threads | train s | test acc | eval s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    options = " ".join(f"{k}={v}" for k, v in chosen.items() if v is not None) or "defaults"
    print(
        f"| mnist | {options} | {classifier.config.width} | {torch.get_num_threads()} "
        f"| {train_s:.0f} | {accuracy:.4f} | {eval_s:.1f} |"
    )
    if args.save is not None:
        save_classifier(classifier, args.save)


if __name__ == "__main__":
    main()
