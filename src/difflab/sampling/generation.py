"""Generation from a loaded run (runs.load_run): image i of a call uses seed + i, label i and
hint i % M, whatever its batch; a ControlNet run needs hints, a latent run decodes its
latents, so every function here takes and returns images (docs/samplers.md).
"""

from __future__ import annotations

import torch
from torch import Tensor

from difflab.conditioning import (
    NULL_LABEL,
    Condition,
    DenoiseFn,
    classifier_free_guidance,
    classifier_guidance,
    conditioned,
)
from difflab.config.build import check_sample
from difflab.config.schema import SampleConfig
from difflab.core.errors import ConfigError, TrainingError
from difflab.core.progress import progress
from difflab.data import to_uint8
from difflab.evaluation.classifier import Classifier, load_classifier
from difflab.latents import Codec, IdentityCodec
from difflab.parameterization import Denoiser
from difflab.runs.load import LoadedRun
from difflab.samplers import SAMPLERS, SamplingGrid, StackedGenerator, ThresholdKind, thresholded
from difflab.samplers.base import StepCallback
from difflab.samplers.options import grid_times, sampler_kwargs
from difflab.sampling.hints import check_hints, cycled


@torch.no_grad()
def sample_images(
    denoiser: Denoiser,
    *,
    image_shape: tuple[int, int, int],
    labels: Tensor | None,
    seeds: list[int],
    sample: SampleConfig,
    device: torch.device | str,
    classifier: Classifier | None = None,
    classifier_labels: Tensor | None = None,
    hints: Tensor | None = None,
    codec: Codec | None = None,
    callback: StepCallback | None = None,
    embeddings: Tensor | None = None,
) -> Tensor:
    """Samples in [-1, 1], [N, C, H, W] float32, one seed per image; labels [N] (the model's
    condition) or None; hints [N, C_hint, H, W] (a ControlNet's control images) or None, which
    a ControlledUNet takes for its base network. With a noisy classifier, guided toward
    classifier_labels [N]. With a codec (latent diffusion) the sampler draws latents of
    codec.latent_shape(image_shape) and the codec decodes them. callback: the sampler's.
    embeddings [N, E]: an unCLIP decoder's image embeddings (guided like labels)."""
    codec = codec or IdentityCodec()
    schedule = denoiser.schedule
    generator = StackedGenerator(seeds, device)
    x = generator.randn((len(seeds), *codec.latent_shape(image_shape)), device=device)
    grid = SamplingGrid.build(schedule, grid_times(schedule, sample))
    denoise = guided_denoise(
        denoiser,
        labels,
        sample,
        device,
        classifier,
        classifier_labels,
        hints=hints,
        embeddings=embeddings,
    )
    sampler = SAMPLERS.get(sample.sampler)
    x0 = sampler(denoise, x, grid, generator=generator, callback=callback, **sampler_kwargs(sample))
    return codec.decode(x0)


def guided_denoise(
    denoiser: Denoiser,
    labels: Tensor | None,
    sample: SampleConfig,
    device: torch.device | str,
    classifier: Classifier | None = None,
    classifier_labels: Tensor | None = None,
    *,
    hints: Tensor | None = None,
    embeddings: Tensor | None = None,
) -> DenoiseFn:
    """The function a sampler calls: classifier-free guidance at sample.guidance on labels and
    hints (a ControlNet's) when there are labels, against the null condition (the null label
    and the zero hint, as condition dropout trained them; a model without labels is trained
    without dropout, so its hints are never guided), then classifier guidance toward
    classifier_labels at sample.classifier_scale (with a classifier; at scale 0 it changes
    nothing), then thresholding of x0 (`threshold_kind`). Image embeddings (an unCLIP
    decoder's) are guided like labels, against the zero embedding."""
    cond = Condition(labels=labels, hint=hints, embedding=embeddings).to(device)
    if labels is None and embeddings is None:
        denoise = conditioned(denoiser, None if cond.is_empty() else cond)
    else:
        denoise = classifier_free_guidance(denoiser, cond, cond.null(), sample.guidance)
    schedule = denoiser.schedule
    if classifier is not None:
        if classifier_labels is None:
            raise ConfigError("classifier guidance needs the labels to guide toward")
        target = classifier_labels.to(device)
        scale = sample.classifier_scale
        denoise = classifier_guidance(denoise, classifier, target, scale=scale, schedule=schedule)
    kind = threshold_kind(sample, guided=classifier is not None and sample.classifier_scale > 0)
    if kind is None:
        return denoise
    pct = sample.threshold_percentile
    return thresholded(denoise, schedule=schedule, percentile=pct, kind=kind)


def threshold_kind(sample: SampleConfig, *, guided: bool) -> ThresholdKind | None:
    """The x0 thresholding to apply: sample.threshold, "off" being none; where it is unset
    (None), static under classifier guidance (as guided-diffusion's clip_denoised=True: the
    guided x0 leaves [-1, 1] by far on the noisiest steps, bench/README.md) and none otherwise."""
    if sample.threshold is None:
        return "static" if guided else None
    return None if sample.threshold == "off" else sample.threshold


# ----------------------------------------------------------------------------------------
# Classifier guidance


def load_guidance_classifier(path: str, run: LoadedRun, device: torch.device | str) -> Classifier:
    """A noisy classifier saved by evaluation.save_classifier that fits the run's images and
    classes; ConfigError naming the folder otherwise."""
    if not isinstance(run.codec, IdentityCodec):
        raise ConfigError(
            f"classifier {path}: classifier guidance needs a pixel run; this one samples "
            "latents (model.latent.vae)"
        )
    classifier = load_classifier(path, device)
    c = classifier.config
    if not c.noisy:
        raise ConfigError(
            f"classifier {path} is not time-conditioned (noisy=False); classifier guidance "
            "needs one trained with `difflab train-classifier --noisy` (train_classifier(..., "
            "noisy=True))"
        )
    if (c.in_channels, c.image_size, c.image_size) != run.image_shape:
        raise ConfigError(
            f"classifier {path} takes images {(c.in_channels, c.image_size, c.image_size)}, "
            f"the model makes {run.image_shape}"
        )
    if run.num_classes and c.num_classes != run.num_classes:
        raise ConfigError(
            f"classifier {path} has {c.num_classes} classes, the model {run.num_classes}"
        )
    return classifier


def resolve_labels(labels: list[int] | None, num: int, num_classes: int) -> Tensor | None:
    """Labels for num images: the given ones cycled, or 0..num_classes-1 cycled."""
    if num_classes == 0:
        if labels:
            raise ConfigError("this model is unconditional; it takes no --labels")
        return None
    chosen = labels if labels else list(range(num_classes))
    bad = [y for y in chosen if not 0 <= y < num_classes]
    if bad:
        raise ConfigError(f"label {bad[0]} is outside 0..{num_classes - 1}")
    return torch.tensor([chosen[i % len(chosen)] for i in range(num)], dtype=torch.long)


def generate(
    run: LoadedRun,
    *,
    num: int,
    labels: list[int] | None = None,
    sample: SampleConfig | None = None,
    seed: int = 0,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    hints: Tensor | None = None,
    rows: range | None = None,
    embeddings: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """(uint8 images [N, C, H, W], labels [N] with NULL_LABEL when unconditional).

    `sample` defaults to the run's config section (the recipe's recommendation); image i uses
    seed + i, and hint i % M of hints [M, C_hint, H, W] (required by a ControlNet run, refused
    by others: check_hints). With sample.classifier, images are guided toward their labels by
    that noisy classifier (for an unconditional model, labels cycle over its classes).
    rows: draw only these images of the num (a rank's shard, which may run past num - 1 as
    padding); the labels returned are still all num. embeddings [M, E]: an unCLIP decoder's
    image embeddings, image i getting embedding i % M."""
    sample, classifier, num_classes = generation_setup(run, num, sample, device, hints)
    rows = range(num) if rows is None else rows
    y = resolve_labels(labels, max(num, rows.stop), num_classes)  # cycled on past num: padding
    images = draw_images(
        run,
        y,
        rows=rows,
        seed=seed,
        sample=sample,
        classifier=classifier,
        hints=hints,
        batch_size=batch_size,
        device=device,
        embeddings=embeddings,
    )
    return images, labels_or_null(y, num)


def generation_setup(
    run: LoadedRun,
    num: int,
    sample: SampleConfig | None,
    device: torch.device | str,
    hints: Tensor | None = None,
) -> tuple[SampleConfig, Classifier | None, int]:
    """(the sampling settings, checked: the run's `sample` section when None; the noisy
    classifier they name, if any; the classes labels cycle over: the model's, else the
    classifier's, 0 for none), after checking the hints against the run (check_hints)."""
    sample = run.config.sample if sample is None else sample
    check_sample(sample)
    if num < 1:
        raise ConfigError(f"--num must be at least 1, got {num}")
    check_hints(run, hints)
    classifier = None
    if sample.classifier is not None:
        classifier = load_guidance_classifier(sample.classifier, run, device)
    num_classes = run.num_classes or (classifier.config.num_classes if classifier else 0)
    return sample, classifier, num_classes


def draw_images(
    run: LoadedRun,
    y: Tensor | None,
    *,
    rows: range,
    seed: int,
    sample: SampleConfig,
    classifier: Classifier | None,
    hints: Tensor | None,
    batch_size: int,
    device: torch.device | str,
    embeddings: Tensor | None = None,
) -> Tensor:
    """uint8 images [len(rows), C, H, W] in batches: image i of rows from seed + i, label y[i]
    (the model's condition if it has classes, the classifier's target if there is one; y holds
    at least rows.stop labels) and hint i % M of hints [M, ...]."""
    chunks = []
    bar = progress(len(rows), "sampling", unit="img", leave=False)
    for start in range(rows.start, rows.stop, batch_size):
        batch = range(start, min(rows.stop, start + batch_size))
        y_batch = None if y is None else y[batch.start : batch.stop]
        x0 = sample_images(
            run.denoiser,
            image_shape=run.image_shape,
            labels=y_batch if run.num_classes else None,
            seeds=[seed + i for i in batch],
            sample=sample,
            device=device,
            classifier=classifier,
            classifier_labels=y_batch,
            hints=cycled(hints, batch),
            codec=run.codec,
            embeddings=cycled(embeddings, batch),
        )
        if not torch.isfinite(x0).all():
            raise TrainingError("generated images contain non-finite values")
        chunks.append(to_uint8(x0).cpu())
        bar.update(len(batch))
    bar.close()
    return torch.cat(chunks)


def labels_or_null(y: Tensor | None, num: int) -> Tensor:
    """The first num labels of y, or num NULL_LABELs when there are none."""
    return y[:num] if y is not None else torch.full((num,), NULL_LABEL, dtype=torch.long)
