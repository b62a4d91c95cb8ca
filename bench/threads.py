"""CPU thread settings against sampling and training speed of the digits recipe.

    python bench/threads.py --run runs/digits          # prints a markdown table

Each setting runs in a fresh process, since OpenMP reads OMP_WAIT_POLICY when torch loads:
`difflab default` is what the difflab command applies (difflab.cli.cpu_threads), `torch's
default` sets no OpenMP variable, the others pin OMP_NUM_THREADS and the wait policy. Every row
notes the load average when it was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

SETTINGS = {  # name -> environment (None: difflab's default)
    "difflab default": None,
    "torch's default": {},
    "1 thread": {"OMP_NUM_THREADS": "1"},
    "2 threads, passive": {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
    "2 threads, active": {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "ACTIVE"},
}


def measure(run: str, num: int, steps: int) -> dict:
    """Images/s of `generate` (num images from run) and of `steps` digits training steps."""
    import torch

    from difflab.config.recipes import load_config
    from difflab.runs.load import load_run
    from difflab.sampling.generation import generate
    from difflab.training.loop import train

    loaded = load_run(run)
    started = time.perf_counter()
    generate(loaded, num=num, batch_size=num)
    sample = num / (time.perf_counter() - started)
    with tempfile.TemporaryDirectory() as root:
        overrides = [f"run.root={root}", f"train.steps={steps}", f"train.log_every={steps}"]
        overrides += ["train.sample_every=0", "train.val_every=0", "train.progress=false"]
        run_dir = train(load_config("digits", overrides + ["train.cpu_threads=null"]))
        records = (run_dir / "metrics.jsonl").read_text().splitlines()
    images = [json.loads(r)["images_per_s"] for r in records if "images_per_s" in r]
    return {"threads": torch.get_num_threads(), "sample": sample, "train": images[-1]}


def row(name: str, env: dict | None, args: argparse.Namespace) -> str:
    """One table row: the setting measured in a subprocess, with the load average before it."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
    if env is None:
        from difflab.cli.cpu_threads import default_environment

        env = default_environment(environ)
    command = [sys.executable, __file__, "--worker", "--run", args.run]
    command += ["--num", str(args.num), "--steps", str(args.steps)]
    load = os.getloadavg()[0]
    try:
        out = subprocess.run(
            command, env={**environ, **env}, capture_output=True, text=True, timeout=args.timeout
        )
    except subprocess.TimeoutExpired:
        return f"| {name} | | not done in {args.timeout} s | | {load:.1f} |"
    if out.returncode:
        raise SystemExit(out.stderr)
    m = json.loads(out.stdout.strip().splitlines()[-1])
    return f"| {name} | {m['threads']} | {m['sample']:.0f} | {m['train']:.0f} | {load:.1f} |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a trained digits run folder")
    p.add_argument("--num", type=int, default=100, help="images sampled per measurement")
    p.add_argument("--steps", type=int, default=40, help="training steps per measurement")
    p.add_argument("--timeout", type=int, default=90, help="seconds allowed to each setting")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(measure(args.run, args.num, args.steps)))
        return
    print("| setting | threads | sample img/s | train img/s | load (1 min) |")
    print("| --- | --- | --- | --- | --- |")
    for name, env in SETTINGS.items():
        print(row(name, env, args), flush=True)


if __name__ == "__main__":
    main()
