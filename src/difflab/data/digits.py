"""scikit-learn's bundled handwritten digits (UCI optical digits): 1797 grey 8x8 images.

No download and no data folder: the default recipe trains on these in minutes on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from difflab.data.dataset import DATASETS, ImageDataset, Split

NUM_TRAIN = 1500  # the remaining 297 images are the test split
SPLIT_SEED = 0
MAX_VALUE = 16  # sklearn's digits count pixels 0..16


@DATASETS.register("digits")
def load_digits(
    *, root: Path | None, split: Split, download: bool, max_bad_fraction: float
) -> ImageDataset:
    """The fixed split: a permutation seeded with SPLIT_SEED, first NUM_TRAIN are "train".

    `root`, `download` and `max_bad_fraction` do not apply (the data ships with scikit-learn).
    """
    from sklearn.datasets import load_digits as sklearn_digits  # slow import, only when used

    digits = sklearn_digits()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(digits.target))
    index = order[:NUM_TRAIN] if split == "train" else order[NUM_TRAIN:]
    pixels = np.rint(digits.images[index] * (255 / MAX_VALUE)).astype(np.uint8)  # [N, 8, 8]
    return ImageDataset(
        images=torch.from_numpy(pixels).unsqueeze(1),  # [N, 1, 8, 8]
        labels=torch.from_numpy(digits.target[index]).long(),
        num_classes=10,
        class_names=[str(d) for d in range(10)],
        name="digits",
        split=split,
    )
