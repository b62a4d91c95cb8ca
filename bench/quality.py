"""Sample quality at a fixed wall-clock budget: difflab against diffusers, in one process.

For each recipe (mnist, cifar10) both libraries train the same-sized class-conditional UNet
with the same data pipeline, schedule (cosine, 1000 steps), v-prediction, batch size, AdamW
settings, label dropout and budget; diffusers as in its unconditional training example
(UNet2DModel with num_class_embeds, DDPMScheduler, EMAModel), difflab with its own trainer.
Both then sample with DDIM, the recipe's steps and guidance, and are scored with the same
difflab classifier: FID in its feature space against the test split, and the accuracy of
the requested classes.

python bench/quality.py [--recipe mnist --recipe cifar10] [--budget-s 600 [300 ...]]
    [--budget-steps N [N ...]] [--seed S] [--device auto] [--eval-samples 5000] [--small]
    [--sample-steps K] [--classifier-steps N] [--quick] [--clock wall|process] [--threads N]
    [--library difflab|diffusers] [--set KEY=VALUE]

Several budgets form a learning curve: one run per library, scored each time it reaches a
budget, with the clock stopped while it samples (the LR is constant after its warm-up and
both EMAs depend only on the steps so far, so the row of a budget is the run of that budget).
--small uses a small network (for CPU); --quick is a seconds-long smoke run on digits.
"""

from __future__ import annotations

import argparse
import copy
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from difflab.config.recipes import load_config
from difflab.config.schema import Config
from difflab.data import load_dataset
from difflab.evaluation import ClassifierFeatures, EvalOptions, evaluate
from difflab.evaluation.classifier_cache import cache_root, cached_classifier
from difflab.parallel.distributed import resolve_device
from difflab.runs.load import LoadedRun
from difflab.runs.rng import seeded_generator
from difflab.sampling.generation import generate
from difflab.training.batches import DeviceData
from difflab.training.optim import set_lr
from difflab.training.session import open_training_run
from difflab.training.step import train_step

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SMALL = "{base_channels: 16, channel_mults: [1, 2], blocks_per_level: 1, norm_groups: 8}"
# The budget's clock: "process" counts only this process's CPU time, so other jobs on a shared
# CPU do not shorten one library's budget more than the other's.
CLOCKS = {"wall": time.perf_counter, "process": time.process_time}
QUICK = "{base_channels: 8, channel_mults: [1, 2], blocks_per_level: 1, norm_groups: 4}"


@dataclass
class Trained:
    """What a library's training produced, and how to sample from it."""

    library: str
    params: int
    steps: int
    images: int
    seconds: float
    sample: object  # (num, seed) -> (uint8 images [N, C, H, W], labels [N])
    run: LoadedRun | None = None  # difflab's EMA model (bench/deploy_quality.py exports it)


def recipe_config(recipe: str, args: argparse.Namespace, root: str | None) -> Config:
    """The recipe, trained by time: constant LR after its warm-up, no periodic work."""
    overrides = [
        "train.steps=100000000",
        "train.lr_schedule=constant",
        "train.sample_every=0",
        "train.val_every=0",
        "train.checkpoint_every=0",
        "train.progress=false",
        f"train.device={args.device}",
        f"run.root={args.work}/runs",
        f"train.seed={args.seed}",
    ]
    if root is not None:
        overrides.append(f"data.root={root}")
    if args.small or args.quick:
        overrides.append(f"model.options={QUICK if args.quick else SMALL}")
        overrides.append("train.warmup_steps=20")
    if args.quick:
        overrides += ["train.batch_size=16", "model.options.attention_resolutions=[]"]
    config = load_config(recipe, [*overrides, *args.set])
    if args.sample_steps is not None:
        config.sample = replace(config.sample, steps=args.sample_steps)
    return config


@dataclass
class Budgets:
    """When to score a run: after each of `seconds` of `clock` spent training (the clock
    stops while the caller samples), or after each of `steps` optimizer steps."""

    seconds: list[float]
    steps: list[int]
    clock: object

    def run(self, step_fn, device: torch.device) -> Iterator[tuple[int, float]]:
        """Call step_fn(step) until the last budget; yield (steps, seconds) at each one."""
        marks = sorted(self.steps) if self.steps else sorted(self.seconds)
        step, spent = 0, 0.0
        for mark in marks:
            while (step < mark) if self.steps else (spent < mark):
                started = self.clock()
                step_fn(step)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)  # the step reads nothing: wait here
                spent += self.clock() - started
                step += 1
            yield step, spent


def train_difflab(config: Config, budgets: Budgets) -> Iterator[Trained]:
    s = open_training_run(config)
    t = s.config.train
    run = LoadedRun(config, s.ema_denoiser, s.num_classes, s.image_shape, 0)
    params = sum(p.numel() for p in s.state.model.parameters())

    def one_step(step: int) -> None:
        set_lr(s.state.optimizer, t, step)
        generator = seeded_generator(t.seed, "step", step, s.device)
        train_step(s.state, [s.data.micro_batch(step, generator)], generator, step)

    def sample(num: int, seed: int):
        return generate(run, num=num, seed=seed, batch_size=256, device=s.device)

    for step, seconds in budgets.run(one_step, s.device):
        yield Trained("difflab", params, step, step * t.batch_size, seconds, sample, run)


# ----------------------------------------------------------------------------------------
# diffusers, as in examples/unconditional_image_generation/train_unconditional.py


def diffusers_unet(config: Config, channels: int, size: int, num_classes: int):
    """UNet2DModel with difflab's UNet sizes: channels, blocks, attention levels, heads."""
    from diffusers import UNet2DModel

    from difflab.networks import build_network

    net = build_network(
        config.model.network,
        in_channels=channels,
        image_size=size,
        num_classes=num_classes,
        options=dict(config.model.options),
    ).config
    widths = [net.base_channels * m for m in net.channel_mults]
    attention = [size // 2**i in net.attention_resolutions for i in range(len(widths))]
    head_dim = next((w for w, a in zip(widths, attention, strict=True) if a), widths[-1])
    return UNet2DModel(
        sample_size=size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=tuple(widths),
        layers_per_block=net.blocks_per_level,
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in attention[::-1]),
        norm_num_groups=net.norm_groups,
        dropout=net.dropout,
        attention_head_dim=head_dim // net.num_heads,
        num_class_embeds=num_classes + 1,  # the last one is the null label of guidance
    )


def train_diffusers(config: Config, budgets: Budgets) -> Iterator[Trained]:
    from diffusers import DDPMScheduler
    from diffusers.training_utils import EMAModel

    t, device = config.train, resolve_device(config.train.device)
    d = config.data
    dataset = load_dataset(d.dataset, root=d.root, split=d.split, **d.options)
    data = DeviceData(dataset, data=config.data, batch_size=t.batch_size, seed=t.seed,
                      class_conditional=True, device=device)  # fmt: skip
    c, size = dataset.image_shape[0], dataset.image_shape[1]
    torch.manual_seed(t.seed)
    model = diffusers_unet(config, c, size, dataset.num_classes).to(device).train()
    scheduler = DDPMScheduler(
        num_train_timesteps=config.model.num_steps,
        beta_schedule="squaredcos_cap_v2",  # difflab's "cosine" (Nichol & Dhariwal 2021)
        prediction_type="v_prediction",
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, betas=t.betas,
                                  weight_decay=t.weight_decay, eps=t.adam_eps)  # fmt: skip
    # the example's defaults: --ema_max_decay 0.9999, --ema_power 3/4, --ema_inv_gamma 1
    ema = EMAModel(model.parameters(), decay=0.9999, use_ema_warmup=True, power=0.75)
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda")

    def one_step(step: int) -> None:
        set_lr(optimizer, t, step)
        generator = seeded_generator(t.seed, "step", step, device)
        batch = data.micro_batch(step, generator)
        x0, labels = batch.x0, batch.cond.labels
        drop = torch.rand(len(x0), generator=generator, device=device) < t.cond_dropout
        labels = torch.where(drop, dataset.num_classes, labels)
        noise = torch.randn(x0.shape, generator=generator, device=device)
        steps = torch.randint(0, scheduler.config.num_train_timesteps, (len(x0),),
                              generator=generator, device=device)  # fmt: skip
        x_t = scheduler.add_noise(x0, noise, steps)
        with autocast:
            v = model(x_t, steps, class_labels=labels).sample
        loss = F.mse_loss(v.float(), scheduler.get_velocity(x0, noise, steps))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip or float("inf"))
        optimizer.step()
        ema.step(model.parameters())

    def sample(num: int, seed: int):
        sampling_model = copy.deepcopy(model).eval()
        ema.copy_to(sampling_model.parameters())
        return diffusers_sample(sampling_model, scheduler, config, dataset.num_classes, num, seed)

    params = sum(p.numel() for p in model.parameters())
    for step, seconds in budgets.run(one_step, device):
        yield Trained("diffusers", params, step, step * t.batch_size, seconds, sample)


@torch.no_grad()
def diffusers_sample(model, train_scheduler, config: Config, num_classes: int, num, seed):
    """DDIM with classifier-free guidance on the model output (v is linear in x0 and eps)."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(train_scheduler.config)
    scheduler.set_timesteps(config.sample.steps)
    device, w = next(model.parameters()).device, config.sample.guidance
    c, size = model.config.in_channels, model.config.sample_size
    labels = torch.arange(num) % num_classes
    chunks = []
    for start in range(0, num, 256):
        y = labels[start : start + 256].to(device)
        generator = torch.Generator(device).manual_seed(seed + start)
        x = torch.randn((len(y), c, size, size), generator=generator, device=device)
        null = torch.full_like(y, num_classes)
        for t in scheduler.timesteps:
            out = model(torch.cat([x, x]), t, class_labels=torch.cat([y, null])).sample
            cond, uncond = out.float().chunk(2)
            x = scheduler.step(uncond + w * (cond - uncond), t, x).prev_sample
        chunks.append(((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu())
    return torch.cat(chunks), labels


# ----------------------------------------------------------------------------------------
# Scoring and the table


def data_root(recipe: str, args: argparse.Namespace) -> str | None:
    """mnist: DATA/mnist; cifar10: the JPEG tar extracted into the work folder."""
    if recipe == "mnist":
        return str(args.data / "mnist")
    if recipe == "cifar10":
        with tarfile.open(args.data / "cifar10-jpg.tar.gz") as tar:
            tar.extractall(args.work, filter="data")
        return str(Path(args.work) / "cifar10")
    return None


def bench_recipe(recipe: str, args: argparse.Namespace) -> list[str]:
    config = recipe_config(recipe, args, data_root(recipe, args))
    device = resolve_device(args.device)
    d = config.data
    train_set, test_set = (
        load_dataset(d.dataset, root=d.root, split=split, **d.options)
        for split in ("train", "test")
    )
    cache = cache_root(args.cache_dir)
    classifier, _, _ = cached_classifier(
        train_set, cache=cache, steps=args.classifier_steps, device=device
    )
    rows = []
    budgets = Budgets(args.budget_s, args.budget_steps or [], CLOCKS[args.clock])
    trainings = (TRAINERS[name](config, budgets) for name in args.library or TRAINERS)
    for trained in (point for training in trainings for point in training):
        started = time.perf_counter()
        images, labels = trained.sample(args.eval_samples, args.seed)
        sample_s = time.perf_counter() - started
        result = evaluate(
            images,
            labels,
            reference=test_set,
            metrics=["fid", "accuracy"],
            extractor=ClassifierFeatures(classifier, device=device),
            classifier=classifier,
            cache_dir=cache / "reference",
            options=EvalOptions(device=str(device)),
        )
        s = config.sample
        rows.append(
            f"| {recipe} | {trained.library} | {args.seed} | {trained.params / 1e6:.2f}M "
            f"| {trained.seconds:.0f} "
            f"| {trained.steps} | {trained.images} | {s.sampler} {s.steps} steps, w={s.guidance} "
            f"| {len(images)} | {result['fid']:.3f} | {result['accuracy']:.3f} | {sample_s:.0f} |"
        )
        print(rows[-1], flush=True)
    return rows


TRAINERS = {"difflab": train_difflab, "diffusers": train_diffusers}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", action="append", choices=("mnist", "cifar10", "digits"))
    p.add_argument("--library", action="append", choices=("difflab", "diffusers"),
                   help="repeatable (default: both); one per device call")  # fmt: skip
    p.add_argument("--budget-s", type=float, nargs="+", default=[600.0],
                   help="training seconds per model; several: score the run at each")  # fmt: skip
    p.add_argument("--budget-steps", type=int, nargs="+",
                   help="budgets in optimizer steps instead of seconds")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="training seed and sample seed")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                   help="budget in wall seconds, or in this process's CPU seconds (fair on a "
                        "shared CPU; use with --threads 1)")  # fmt: skip
    p.add_argument("--eval-samples", type=int, default=5000)
    p.add_argument("--sample-steps", type=int, help="default: the recipe's")
    p.add_argument("--classifier-steps", type=int, help="default: train_classifier's")
    p.add_argument("--small", action="store_true", help="a small network, for CPU runs")
    p.add_argument("--threads", type=int, help="torch intra-op threads on CPU")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--cache-dir", help="classifier and reference cache (default: difflab's)")
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run on digits")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override for difflab's side (repeatable)",
    )
    args = p.parse_args()
    if args.quick:
        args.recipe = ["digits"]
        args.budget_s, args.eval_samples = [min(min(args.budget_s), 2.0)], 20
        args.sample_steps, args.classifier_steps = 2, args.classifier_steps or 5
    return args


def main() -> None:
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    threads = torch.get_num_threads()
    budgets = args.budget_steps or args.budget_s
    unit = "steps" if args.budget_steps else f"{args.clock} s"
    print(f"device: {name}, torch threads {threads}, budgets {budgets} {unit}")
    header = "| recipe | library | seed | params | train s | steps | images seen | sampler "
    header += "| samples | FID (difflab features) | accuracy | sample s |"
    print(header + "\n" + "| --- " * 12 + "|", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        args.work = work
        for recipe in args.recipe or ["mnist", "cifar10"]:
            rows += bench_recipe(recipe, args)
    print("\n" + header + "\n" + "| --- " * 12 + "|\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
