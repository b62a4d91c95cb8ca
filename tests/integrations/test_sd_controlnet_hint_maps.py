"""A Stable Diffusion ControlNet on ready-made hint maps: data.hints=FOLDER pairs each COCO image
with FOLDER/<its path under data.root>.<any image extension>, cropped and flipped as its image;
a missing or mis-sized map is a one-line error naming it; a 2-step run trains on the folder's
maps; `difflab sample --hint-map` samples as the API does with the same map."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from difflab.core.errors import DataError
from difflab.evaluation.samples import load_samples_npz
from difflab.integrations.stable_diffusion.sampling import prompt_images
from difflab.integrations.stable_diffusion.session import open_sd_session
from difflab.runs.checkpoint import load_latest_checkpoint
from difflab.runs.load import load_run
from difflab.training.loop import train

from .test_sd_controlnet_training import cn_config
from .tiny_coco import write_tiny_coco
from .tiny_sd import IMAGE_SIZE

pytest.importorskip("diffusers")
BLUR = ["model.controlnet.hint=blur"]  # 3-channel hints, no OpenCV needed


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return write_tiny_coco(tmp_path_factory.mktemp("coco"), count=6)


def images_of(coco: Path) -> list[Path]:
    return sorted((coco / "train2017").glob("*.jpg"))


def write_maps(coco: Path, folder: Path, value=None) -> Path:
    """folder/train2017/<stem>.png for each image: its decoded pixels, or grey `value(k)` for
    the k-th image (of the image's size)."""
    (folder / "train2017").mkdir(parents=True, exist_ok=True)
    for k, image in enumerate(images_of(coco)):
        pixels = np.asarray(Image.open(image).convert("RGB"))
        if value is not None:
            pixels = np.full(pixels.shape[:2], value(k), np.uint8)
        Image.fromarray(pixels).save(folder / "train2017" / f"{image.stem}.png")
    return folder


def test_batches_carry_their_images_maps_cropped_and_flipped_alike(sd_folder, tmp_path):
    """Maps that are the images themselves: with random crops and flips, each row's hint is its
    own image as the batch sees it (wide images of distinct colours with a horizontal ramp)."""
    coco = write_tiny_coco(tmp_path / "coco", count=6, sizes=((16, 48), (20, 40)))
    maps = write_maps(coco, tmp_path / "maps")
    config = cn_config(sd_folder, coco, tmp_path, f"data.hints={maps}", "data.crop=random",
                       "data.flip=true", hint=BLUR)  # fmt: skip
    s = open_sd_session(config)
    flips = 0
    for m in range(3):
        hint = s.data.micro_batch(m, torch.Generator().manual_seed(m)).cond.hint  # [2, 3, S, S]
        epoch, _ = s.data.position(m)
        for row, i in zip(hint, s.data.indices(m).tolist(), strict=True):
            image = s.data.stream.dataset[(epoch, i)].image.float() / 127.5 - 1  # [3, S, S]
            assert torch.equal(row, image) or torch.equal(row, image.flip(-1))
            flips += int(not torch.equal(row, image))
    assert 0 < flips < 6  # both kinds of rows were seen


def test_missing_and_mis_sized_maps_are_one_line_errors(sd_folder, coco, tmp_path):
    maps = write_maps(coco, tmp_path / "maps", value=lambda k: 10 * k)
    third = images_of(coco)[2]
    (maps / "train2017" / f"{third.stem}.png").unlink()
    config = cn_config(sd_folder, coco, tmp_path, f"data.hints={maps}", hint=BLUR)
    with pytest.raises(DataError, match=rf"no hint map for image train2017/{third.name}$"):
        open_sd_session(config)
    Image.fromarray(np.zeros((8, 9), np.uint8)).save(maps / "train2017" / f"{third.stem}.jpg")
    with pytest.raises(DataError) as err:
        open_sd_session(config)
    h, w = Image.open(third).size[::-1]
    assert str(err.value).endswith(f"{third.stem}.jpg: a 8x9 map for the {h}x{w} image {third}")
    assert "\n" not in str(err.value)


def grey_maps(coco: Path, folder: Path, shift: int) -> Path:
    return write_maps(coco, folder, value=lambda k: (40 * k + shift) % 256)


def two_steps(sd_folder, coco, root: Path, maps: Path) -> Path:
    return train(
        cn_config(sd_folder, coco, root, f"data.hints={maps}", "train.steps=2",
                  "train.sample_every=2", "sample.steps=2", "sample.num=2", "train.lr=0.05",
                  hint=BLUR),
        tensorboard=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def map_run(sd_folder, coco, tmp_path_factory):
    """A 2-step run on grey maps (its grids drawn under the maps of the first items), with a
    learning rate large enough for its ControlNet to change 8-bit samples."""
    tmp = tmp_path_factory.mktemp("map-run")
    return two_steps(sd_folder, coco, tmp / "runs", grey_maps(coco, tmp / "maps", 0))


def test_a_run_trains_on_its_folders_maps(sd_folder, coco, map_run, tmp_path):
    """The same run on other maps ends with other ControlNet weights (the hint encoder's zero
    convolution, trained from step 2 on the maps' features), and the same frozen UNet."""
    other = two_steps(sd_folder, coco, tmp_path / "runs", grey_maps(coco, tmp_path / "m", 128))
    assert (map_run / "samples" / "step-000002-ema.png").is_file()
    a, b = (load_latest_checkpoint(r, with_state=False).model for r in (map_run, other))
    key = "controlnet.controlnet_cond_embedding.conv_out.weight"
    assert not torch.allclose(a[key], b[key], rtol=0, atol=1e-6)
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("unet."))


def test_sample_hint_map_equals_the_api_with_the_same_maps(map_run, tmp_path):
    """Two grey maps in a folder, cycled over three images, from the CLI and from
    prompt_images given the same maps as a tensor."""
    from difflab.cli.main import main

    folder = tmp_path / "hints"
    folder.mkdir()
    edges = np.zeros((2, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    edges[0, 4:12, 8], edges[1, 6, 2:14] = 255, 255
    for k, e in enumerate(edges):
        Image.fromarray(e).save(folder / f"{k}.png")
    out = tmp_path / "out.npz"
    args = ["sample", str(map_run), "--prompt", "a cat", "--num", "3", "--steps", "2"]
    assert main([*args, "--seed", "5", "--batch-size", "2", "--hint-map", str(folder),
                 "--out", str(out)]) == 0  # fmt: skip
    run = load_run(map_run)
    hints = torch.from_numpy(edges).float()[:, None].expand(-1, 3, -1, -1) / 127.5 - 1
    sample = replace(run.config.sample, steps=2)
    expected = prompt_images(run, ["a cat"], num=3, sample=sample, seed=5, batch_size=2,
                             hints=hints)  # fmt: skip
    images, _ = load_samples_npz(out)
    assert torch.equal(images, expected)
