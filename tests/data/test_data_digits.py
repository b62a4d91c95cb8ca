import numpy as np
import pytest
import torch

from difflab.core.errors import ConfigError
from difflab.data import DATASETS, ImageDataset, load_dataset


@pytest.fixture(scope="module")
def splits() -> dict[str, ImageDataset]:
    return {split: load_dataset("digits", split=split) for split in ("train", "test")}


def test_shapes_and_dtypes(splits):
    train, test = splits["train"], splits["test"]
    assert train.images.shape == (1500, 1, 8, 8) and test.images.shape == (297, 1, 8, 8)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.long
    assert train.num_classes == 10 and train.class_names == [str(d) for d in range(10)]
    assert (train.name, train.split, test.split) == ("digits", "train", "test")
    assert train.skipped == []


def test_pixels_are_rescaled_counts(splits):
    allowed = {round(k * 255 / 16) for k in range(17)}
    values = set(torch.cat([s.images.flatten() for s in splits.values()]).unique().tolist())
    assert values <= allowed and {0, 255} <= values


def test_labels_cover_all_classes(splits):
    for s in splits.values():
        assert s.labels.min() == 0 and s.labels.max() == 9
        assert len(s.labels.unique()) == 10


def test_splits_partition_the_dataset(splits):
    from sklearn.datasets import load_digits

    full = load_digits()
    rows = np.rint(full.images * 255 / 16).reshape(len(full.target), -1)
    want = sorted(zip(map(bytes, rows.astype(np.uint8)), full.target.tolist(), strict=True))
    both = torch.cat([splits["train"].images, splits["test"].images]).flatten(1).numpy()
    labels = torch.cat([splits["train"].labels, splits["test"].labels]).tolist()
    assert sorted(zip(map(bytes, both), labels, strict=True)) == want


def test_split_is_deterministic(splits):
    again = load_dataset("digits", split="test")
    assert torch.equal(again.images, splits["test"].images)
    assert torch.equal(again.labels, splits["test"].labels)


def test_batch_by_index(splits):
    index = torch.tensor([3, 0, 7])
    batch = splits["train"].batch(index)
    assert torch.equal(batch["image"], splits["train"].images[index])
    assert torch.equal(batch["label"], splits["train"].labels[index])


def test_unknown_dataset_split_and_option_are_config_errors():
    assert "digits" in DATASETS
    with pytest.raises(ConfigError, match="digits"):
        load_dataset("no-such-set")
    with pytest.raises(ConfigError, match="data.split"):
        load_dataset("digits", split="valid")
    with pytest.raises(ConfigError, match="data.options.image_size"):
        load_dataset("digits", image_size=16)
