"""Captions for labelled datasets from templates and class synonyms (unCLIP on digits, MNIST,
CIFAR-10): "a handwritten seven", "the digit 7", "a photo of a small cat".

A class's captions are every template filled with every synonym of its name. The last
`held_out` templates of a set are kept for evaluation (split "eval"); training draws from the
others (split "train"). Draws come from a torch generator, so a step's captions follow from
its seed and training resumes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from difflab.core.errors import ConfigError

CaptionSplit = Literal["train", "eval"]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_TEMPLATES = (
    "a handwritten {}",
    "the digit {}",
    "a picture of the number {}",
    "a drawing of a {}",
    "the number {}, written by hand",
    "a scanned digit: {}",
    "an image of the digit {}",  # held out
    "a small sketch of a {}",  # held out
)
# CIFAR-10's class folders (image-folder class names) and their synonyms.
CIFAR10_SYNONYMS = {
    "airplane": ("airplane", "plane", "aircraft"),
    "automobile": ("car", "automobile", "sedan"),
    "bird": ("bird", "small bird"),
    "cat": ("cat", "small cat", "kitten"),
    "deer": ("deer", "fawn"),
    "dog": ("dog", "puppy"),
    "frog": ("frog", "toad"),
    "horse": ("horse", "pony"),
    "ship": ("ship", "boat"),
    "truck": ("truck", "lorry"),
}
PHOTO_TEMPLATES = (
    "a photo of a {}",
    "a blurry photo of a {}",
    "a low resolution photo of the {}",
    "a close-up photo of a {}",
    "a picture of a {}",
    "a cropped photo of the {}",
    "an image of a {}",  # held out
    "a small photo of the {}",  # held out
)
HELD_OUT = 2


@dataclass(frozen=True)
class ClassCaptions:
    """Templates ("...{}...") and, per class, synonyms of its name; the last `held_out`
    templates are the evaluation split."""

    templates: tuple[str, ...]
    synonyms: tuple[tuple[str, ...], ...]  # [num_classes][k]
    held_out: int = HELD_OUT

    def __post_init__(self) -> None:
        if not 0 < self.held_out < len(self.templates):
            raise ConfigError(
                f"captions: held_out={self.held_out} must leave templates on both sides of "
                f"{len(self.templates)}"
            )

    @property
    def num_classes(self) -> int:
        return len(self.synonyms)

    def split_templates(self, split: CaptionSplit) -> tuple[str, ...]:
        cut = len(self.templates) - self.held_out
        return self.templates[:cut] if split == "train" else self.templates[cut:]

    def class_captions(self, label: int, split: CaptionSplit = "train") -> list[str]:
        """Every caption of class `label` in `split` (templates x synonyms, template-major)."""
        names = self.synonyms[label]
        return [t.format(name) for t in self.split_templates(split) for name in names]

    def draw(
        self, labels: Tensor, generator: torch.Generator, split: CaptionSplit = "train"
    ) -> list[str]:
        """One caption per label ([N] long), uniform over the class's captions of `split`,
        from the generator (one draw of N numbers, whatever the classes)."""
        u = torch.rand(len(labels), generator=generator, device=generator.device).tolist()
        out = []
        for label, r in zip(labels.tolist(), u, strict=True):
            captions = self.class_captions(label, split)
            out.append(captions[min(int(r * len(captions)), len(captions) - 1)])
        return out


def captions_for(class_names: list[str]) -> ClassCaptions:
    """Digit templates for classes "0".."9" (digits, MNIST), photo templates and CIFAR-10's
    synonyms for other names (a class without synonyms is named as it is)."""
    if class_names == [str(d) for d in range(10)]:
        synonyms = tuple((DIGIT_WORDS[d], str(d)) for d in range(10))
        return ClassCaptions(DIGIT_TEMPLATES, synonyms)
    if not class_names:
        raise ConfigError("captions: the dataset has no class names to caption")
    names = (name.replace("_", " ") for name in class_names)
    return ClassCaptions(PHOTO_TEMPLATES, tuple(CIFAR10_SYNONYMS.get(n, (n,)) for n in names))
