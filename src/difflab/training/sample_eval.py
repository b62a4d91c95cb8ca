"""In-training evaluation: FID and classifier accuracy of EMA samples every train.eval_every
steps, logged beside the loss as eval_fid and eval_accuracy.

Features are the difflab classifier's penultimate layer (train.eval_classifier, or a classifier
trained on the training split when the run starts and cached, see classifier_cache). The
reference is the validation split (data.val_split, else data.split), whose statistics are
computed once. Samples use fixed seeds 0..N-1 and labels cycled over the classes, so the
numbers of two steps differ only by the weights. A ControlNet run's sample i is drawn under the
hint of reference image i (cycled), so its FID scores images made from the reference's hints.
An unCLIP decoder's sample i decodes the embedding of validation image i (cycled; training
images without validation), and eval_variation_accuracy is the share of samples the classifier
puts in that image's class.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from difflab.config.schema import Config
from difflab.core.errors import ConfigError, TrainingError
from difflab.data import ImageDataset, load_dataset
from difflab.evaluation import (
    ClassifierFeatures,
    classifier_accuracy,
    frechet_distance,
    load_classifier,
    reference_statistics,
)
from difflab.evaluation.classifier_cache import at_size, cache_root, cached_classifier
from difflab.evaluation.reference import compute_statistics
from difflab.parallel.sharding import is_sharded
from difflab.runs.controlnet import with_paired_hints
from difflab.runs.load import LoadedRun
from difflab.sampling.generation import generate
from difflab.training.batches import dataset_hints
from difflab.training.session import TrainingRun

EVAL_BATCH = 256  # images per sampler call


def config_split(config: Config, split: str, size: int) -> ImageDataset:
    """The run's dataset split as the run reads it (options, channels, paired hint maps), at
    size x size."""
    d = config.data
    dataset = load_dataset(
        d.dataset,
        root=d.root,
        split=split,
        max_bad_fraction=d.max_bad_fraction,
        channels=d.channels,
        **d.options,
    )
    return at_size(with_paired_hints(config, dataset), size)


class SampleEvaluator:
    """Built once per run (on rank 0); `evaluator(s, done)` returns the metrics record."""

    def __init__(self, s: TrainingRun) -> None:
        config, size = s.config, s.image_shape[1]
        if is_sharded(s.state.model):
            raise ConfigError(
                "train.eval_every runs on rank 0 and needs whole weights; with "
                "train.parallel fsdp set it to 0 and run `difflab eval` on the checkpoints"
            )
        path = config.train.eval_classifier
        if path is not None:
            self.classifier = load_classifier(path, s.device)
        else:
            train = config_split(config, config.data.split, size)
            self.classifier, _, _ = cached_classifier(train, cache=cache_root(), device=s.device)
        self.features = ClassifierFeatures(self.classifier, device=s.device)
        reference = config_split(config, config.data.val_split or config.data.split, size)
        self.reference_name = f"{reference.name}/{reference.split}"
        self.reference = reference_statistics(
            reference, self.features, cache_dir=cache_root() / "reference"
        ).stats
        self.hints = dataset_hints(
            config, reference.images, config.train.eval_samples, reference.maps
        )

    @torch.no_grad()
    def __call__(self, s: TrainingRun, done: int) -> dict[str, Any]:
        run = LoadedRun(s.config, s.ema_denoiser, s.num_classes, s.image_shape, done, s.codec)
        num = s.config.train.eval_samples
        source = s.val if s.val is not None else s.data
        embeddings = getattr(source, "embeddings", None)  # an unCLIP decoder's
        try:
            images, labels = generate(
                run,
                num=num,
                batch_size=EVAL_BATCH,
                device=s.device,
                hints=self.hints,
                embeddings=embeddings,
            )
        except TrainingError as err:  # a diverged model should not end the run here
            warnings.warn(f"no sample metrics at step {done}: {err}", stacklevel=2)
            return {"step": done, "eval_error": str(err)}
        stats, _ = compute_statistics(self.features, images)
        record: dict[str, Any] = {
            "step": done,
            "eval_fid": frechet_distance(
                stats.mu, stats.sigma, self.reference.mu, self.reference.sigma
            ),
            "eval_reference": self.reference_name,
            "eval_features": self.features.name,
        }
        if s.num_classes > 0:
            record["eval_accuracy"] = classifier_accuracy(
                self.classifier, images, labels, device=s.device
            )
        elif embeddings is not None:  # sample i decodes the embedding of image i % M
            own = source.labels[torch.arange(num, device=source.labels.device) % len(embeddings)]
            record["eval_variation_accuracy"] = classifier_accuracy(
                self.classifier, images, own, device=s.device
            )
        return record
