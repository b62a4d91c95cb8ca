"""Paired hint folders (data.hints): maps found by each image's file name, read as they are,
reaching the micro-batches of their own images; a missing or mis-sized map, or a dataset
without files, is a one-line error naming it."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from difflab.config.recipes import load_config
from difflab.core.errors import DataError
from difflab.data import load_dataset
from difflab.data.hint_maps import with_hint_maps
from difflab.runs.controlnet import training_hint, with_paired_hints
from difflab.training.batches import DeviceData

TINY = str(Path(__file__).parents[1] / "training" / "tiny.yaml")


def folders(tmp_path: Path, n: int = 6) -> tuple[Path, Path]:
    """(data root with train/<class>/<k>.png images, hint folder with train/<class>/<k>.png
    maps whose value is 10 k + class)."""
    root, hints = tmp_path / "data", tmp_path / "hints"
    for k in range(n):
        for base, value in ((root, 200 - k), (hints, 10 * k + k % 2)):
            (base / "train" / f"c{k % 2}").mkdir(parents=True, exist_ok=True)
            image = np.full((8, 8), value, np.uint8)
            Image.fromarray(image).save(base / "train" / f"c{k % 2}" / f"{k}.png")
    return root, hints


def test_maps_pair_with_their_images_by_name(tmp_path):
    root, hints = folders(tmp_path)
    dataset = load_dataset("image-folder", root=root)
    paired = with_hint_maps(dataset, hints, channels=1)
    maps = paired.maps["hint"]  # [N, 1, 8, 8]
    values = torch.tensor(
        [int(Path(f).stem) * 10 + int(Path(f).parent.name[1]) for f in dataset.files]
    )
    assert torch.equal(maps, (values.float() / 127.5 - 1).view(-1, 1, 1, 1).expand(-1, 1, 8, 8))
    assert torch.equal(with_hint_maps(dataset, hints, channels=3).maps["hint"][:, 2], maps[:, 0])


def test_missing_and_mis_sized_maps_and_file_less_datasets_are_one_line_errors(tmp_path):
    root, hints = folders(tmp_path)
    dataset = load_dataset("image-folder", root=root)
    (hints / "train" / "c1" / "3.png").unlink()
    with pytest.raises(DataError, match=r"no hint map for image train/c1/3\.png$"):
        with_hint_maps(dataset, hints, channels=1)
    Image.fromarray(np.zeros((4, 8), np.uint8)).save(hints / "train" / "c1" / "3.jpg")
    with pytest.raises(DataError, match=r"3\.jpg: a 4x8 map for 8x8 images$"):
        with_hint_maps(dataset, hints, channels=1)
    with pytest.raises(DataError, match="'digits' has no image files"):
        with_hint_maps(load_dataset("digits", split="test"), hints, channels=1)


def test_training_batches_carry_the_paired_maps_of_their_rows(tmp_path):
    root, hints = folders(tmp_path)
    config = load_config(TINY, [
        "data.dataset=image-folder", f"data.root={root}", f"data.hints={hints}",
        "model.controlnet.base_run=runs/base", "model.controlnet.hint=canny",
    ])  # fmt: skip
    dataset = with_paired_hints(config, load_dataset("image-folder", root=root))
    data = DeviceData(
        dataset, data=config.data, batch_size=4, seed=0, class_conditional=True,
        device=torch.device("cpu"), hint=training_hint(config),
    )  # fmt: skip
    batch = data.micro_batch(0, torch.Generator().manual_seed(0))
    assert torch.equal(batch.cond.hint, dataset.maps["hint"][data.indices(0)])
