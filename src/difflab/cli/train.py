"""`difflab train [RECIPE | FILE.yaml] [key.sub=value ...] [--dry-run] [--resume RUN]`."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from difflab.config.build import build_config
from difflab.config.recipes import load_config, read_run_yaml
from difflab.config.schema import Config
from difflab.core.errors import ConfigError
from difflab.distillation.config import is_distilled
from difflab.parallel.distributed import is_main, shutdown
from difflab.training.loop import train
from difflab.training.memory import is_out_of_memory, out_of_memory_error
from difflab.training.signals import Interrupted


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train",
        help="train a model from a recipe or YAML file",
        description="Train from a recipe (default: digits) or a YAML file, with key.sub=value "
        "overrides, e.g. `difflab train mnist data.root=/data/mnist train.steps=20000`.",
    )
    return add_run_arguments(p)


def add_run_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of a command that trains: recipe, overrides, --dry-run, --resume."""
    p.add_argument("items", nargs="*", metavar="RECIPE|FILE.yaml|key.sub=value")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--resume", metavar="RUN", help="continue the run in this folder")
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="let --resume load a state.pt that needs full pickle (runs code: trusted files only)",
    )
    return p


def resolve(args: argparse.Namespace) -> Config:
    """The config of a train command: recipe/file (or the resumed run's config) + overrides."""
    sources = [item for item in args.items if "=" not in item]
    overrides = [item for item in args.items if "=" in item]
    if len(sources) > 1:
        raise ConfigError(f"expected one recipe or config file, got {', '.join(sources)}")
    if args.resume is None:
        return refuse_resume_key(load_config(sources[0] if sources else None, overrides))
    if any(item.startswith("train.resume=") for item in overrides):
        raise ConfigError(f"config key 'train.resume' is set by --resume {args.resume}; drop it")
    if sources:
        raise ConfigError(f"--resume continues {args.resume}'s own config; drop {sources[0]!r}")
    run_dir = Path(args.resume)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"--resume {run_dir}: no config.yaml there (not a difflab run folder)")
    saved = build_config(read_run_yaml(run_dir))
    config = build_config(read_run_yaml(run_dir), overrides)
    warn_inexact_resume(saved, config)
    config.train.resume = str(run_dir)
    return config


def refuse_resume_key(config: Config) -> Config:
    """config, unless it sets train.resume: the CLI resumes one way, --resume, which checks
    the run's own config against the changes."""
    run = config.train.resume
    if run is not None:
        raise ConfigError(
            f"config key 'train.resume' ({run}): resume with `difflab train --resume {run} "
            "[key.sub=value ...]`, which continues the run's own config"
        )
    return config


# Keys that fix the sequence of batches, noise and model: changing one on resume gives a valid
# run, but not the one an uninterrupted run would have given.
EXACT_RESUME_KEYS = ("data", "model", "train.seed", "train.batch_size", "train.grad_accum")


def changed_keys(saved: Config, config: Config) -> list[str]:
    """The EXACT_RESUME_KEYS whose value differs between the saved and the new config."""
    old, new = saved.to_dict(), config.to_dict()
    out = []
    for key in EXACT_RESUME_KEYS:
        section, _, name = key.partition(".")
        a, b = old[section], new[section]
        if (a.get(name) != b.get(name)) if name else (a != b):
            out.append(key)
    return out


def warn_inexact_resume(saved: Config, config: Config) -> None:
    changed = changed_keys(saved, config)
    if changed:
        warnings.warn(
            f"resuming with changed {', '.join(changed)}: the run goes on, but its losses will "
            "differ from an uninterrupted run's",
            stacklevel=2,
        )


def refuse_distilled(config: Config) -> None:
    """A distilled run continues as a distillation (its loss), never as plain training."""
    run_dir = Path(config.train.resume) if config.train.resume else None
    if run_dir is not None and is_distilled(run_dir):
        raise ConfigError(
            f"{run_dir} is a distilled run; continue it with `difflab distill --resume {run_dir}`"
        )


def run(args: argparse.Namespace) -> int:
    config = resolve(args)
    refuse_distilled(config)
    if args.dry_run:
        print(config.to_yaml(), end="")
        return 0
    status, _ = train_and_report(config, args.trust_checkpoint)
    return status


def train_and_report(config: Config, trust_checkpoint: bool) -> tuple[int, Path | None]:
    """(exit status, run folder on rank 0 when training finished, else None): train, leave the
    process group, print that it finished or how it was interrupted."""

    return run_and_report(lambda: train(config, trust_checkpoint=trust_checkpoint))


def run_and_report(work: Callable[[], Path]) -> tuple[int, Path | None]:
    """(exit status, run folder on rank 0 when work finished, else None): run the training
    work, leave the process group, print that it finished or how it was interrupted."""

    finished = False
    try:
        run_dir = work()
        finished = True
    except Interrupted as stopped:
        if is_main():
            print(f"difflab: {stopped}", file=sys.stderr)
        return stopped.exit_status, None
    except (RuntimeError, MemoryError) as err:  # the allocator's, named by the keys to change
        if is_out_of_memory(err):
            raise out_of_memory_error(err) from None
        raise
    finally:
        main = is_main()  # before leaving the process group, after which every rank is "rank 0"
        shutdown(finished)
    if not main:
        return 0, None
    print(f"finished: {run_dir}")  # its `run folder:` line came first
    return 0, run_dir
