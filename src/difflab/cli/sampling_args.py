"""The sampling flags `difflab sample` and `difflab eval` share, the SampleConfig they
resolve to (a flag left out keeps the run's `sample` config section), and the control hints of
--hint-image for a ControlNet run."""

from __future__ import annotations

import argparse
from dataclasses import replace

from torch import Tensor

from difflab.config.schema import SampleConfig
from difflab.core.errors import ConfigError
from difflab.runs.load import LoadedRun
from difflab.samplers import SAMPLERS
from difflab.sampling.hints import hint_maps_from_files, hints_from_files
from difflab.schedules import GRIDS


def add_sampling_arguments(
    p: argparse.ArgumentParser, classifier_flags: tuple[str, ...] = ("--guidance-classifier",)
) -> None:
    """CFG scale, sampler, grid, thresholding and classifier guidance. A flag left out keeps the
    run's `sample` config section (defaults in training.config.SampleConfig). classifier_flags
    name the noisy classifier's flag (`eval` keeps --classifier for its scoring classifier)."""

    p.add_argument("--guidance", type=float, help="CFG scale (default: the recipe's)")
    p.add_argument("--sampler", choices=SAMPLERS.names(), help="default: the recipe's")
    p.add_argument("--steps", type=int, help="sampling steps (default: the recipe's)")
    p.add_argument("--grid", choices=GRIDS.names(), help="sampling grid (default: the recipe's)")
    p.add_argument("--eta", type=float, help="DDIM eta (default: the recipe's)")
    p.add_argument("--churn", type=float, help="Euler/Heun stochastic churn s_churn")
    p.add_argument(
        "--sampler-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a sampler keyword option, e.g. s_noise=1.003 (repeatable)",
    )
    p.add_argument(
        "--spacing", choices=("leading", "trailing", "linspace"), help="uniform grid spacing"
    )
    p.add_argument("--rho", type=float, help="karras grid's exponent")
    p.add_argument("--sigma-max", type=float, help="karras grid's largest sigma / alpha, e.g. 80")
    p.add_argument(
        "--threshold",
        choices=("dynamic", "static", "off"),
        help="x0 thresholding (default: the recipe's; where it sets none, static under "
        "classifier guidance, else off)",
    )
    p.add_argument(
        *classifier_flags,
        dest="guidance_classifier",
        metavar="PATH",
        help="noisy classifier for classifier guidance",
    )
    p.add_argument("--classifier-scale", type=float, help="classifier guidance scale")
    p.add_argument(
        "--hint-image",
        metavar="PATH",
        help="a ControlNet run's control: an image or a folder of images (cycled over the "
        "samples), each made into a hint by the run's hint transform (a ControlNet run needs "
        "this or --hint-map)",
    )
    p.add_argument(
        "--hint-map",
        metavar="PATH",
        help="a ControlNet run's control, ready-made: a hint map or a folder of maps (cycled), "
        "of the run's image size, used as they are",
    )


def hints_from_args(args: argparse.Namespace, run: LoadedRun) -> Tensor | None:
    """The hints of --hint-image (sampling.hints.hints_from_files) or --hint-map
    (hint_maps_from_files) for the run, None without either."""
    if args.hint_image is not None and args.hint_map is not None:
        raise ConfigError("--hint-image and --hint-map both given: pass one of them")
    if args.hint_map is not None:
        return hint_maps_from_files(args.hint_map, run.config, run.image_shape)
    if args.hint_image is None:
        return None
    return hints_from_files(args.hint_image, run.config, run.image_shape)


def sample_config(args: argparse.Namespace, base: SampleConfig) -> SampleConfig:
    """The run's `sample` section with the flags given on the command line."""
    options = dict(base.sampler_options)
    if args.churn is not None:
        options["s_churn"] = args.churn
    for item in args.sampler_option:
        key, _, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not key.strip() or number is None:
            raise ConfigError(f"bad --sampler-option {item!r}; expected KEY=NUMBER, e.g. eta=0.5")
        options[key.strip()] = number
    given = {
        "guidance": args.guidance,
        "sampler": args.sampler,
        "steps": args.steps,
        "grid": args.grid,
        "eta": args.eta,
        "spacing": args.spacing,
        "rho": args.rho,
        "sigma_max": args.sigma_max,
        "classifier": args.guidance_classifier,
        "classifier_scale": args.classifier_scale,
    }
    sample = replace(base, sampler_options=options)
    sample = replace(sample, **{k: v for k, v in given.items() if v is not None})
    if args.threshold is not None:
        sample = replace(sample, threshold=args.threshold)
    if args.classifier_scale is not None and sample.classifier is None:
        raise ConfigError(
            "--classifier-scale needs --guidance-classifier PATH (a noisy classifier)"
        )
    return sample
