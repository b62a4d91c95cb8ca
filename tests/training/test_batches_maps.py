"""A dataset's paired maps (the rendered shapes' depth and class maps) reach the hint transform
with their own images: micro-batch hints equal the hint of the rows the batch drew, in training
and for the grids (dataset_hints)."""

import torch

from difflab.config.recipes import load_config
from difflab.config.schema import DataConfig
from difflab.data import load_dataset, make_hint
from difflab.training.batches import DeviceData, dataset_hints


def test_micro_batch_hints_are_those_of_their_rows_depth_maps():
    dataset = load_dataset("shapes", count=24)
    data = DeviceData(
        dataset,
        data=DataConfig(flip=False),
        batch_size=8,
        seed=3,
        class_conditional=True,
        device=torch.device("cpu"),
        hint=make_hint("depth"),
    )
    for micro in range(4):  # into the second epoch, a new permutation
        batch = data.micro_batch(micro, torch.Generator().manual_seed(micro))
        rows = data.indices(micro)
        assert torch.equal(batch.cond.hint, 1 - 2 * dataset.maps["depth"][rows])


def test_grid_hints_pair_the_first_images_with_their_maps():
    config = load_config(
        "shapes", ["model.controlnet.base_run=runs/x", "model.controlnet.hint=depth"]
    )
    dataset = load_dataset("shapes", split="test", count=6)
    hints = dataset_hints(config, dataset.images, 4, dataset.maps)
    assert torch.equal(hints, 1 - 2 * dataset.maps["depth"][:4])
