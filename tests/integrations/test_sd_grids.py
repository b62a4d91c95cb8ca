"""Sample grids while a Stable Diffusion run trains: at every train.sample_every, the EMA and
raw grids are prompt_images of those weights (sample.prompts cycled, seeds 0..num-1), and
sampling leaves the training losses as they were."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from difflab.config.recipes import load_config
from difflab.core.errors import ConfigError
from difflab.integrations.stable_diffusion.sampling import prompt_images
from difflab.integrations.stable_diffusion.session import open_sd_session
from difflab.parallel import distributed
from difflab.runs.load import load_run
from difflab.sampling.images import image_grid
from difflab.training import periodic as hooks
from difflab.training.loop import train
from difflab.training.periodic import save_samples

from .test_sd_training import losses, sd_config
from .tiny_coco import write_tiny_coco

pytest.importorskip("diffusers")
PROMPTS = ["a cat on a mat", "two dogs"]
GRIDS = ["train.sample_every=2", "sample.steps=2", "sample.num=3", "sample.guidance=3"]
GRIDS += ["sample.eta=1"]  # DDIM draws noise: from the per-image generators
# One thread, set by the run: the module's run would otherwise train before the autouse fixture
# sets it, and sums on 2 threads round differently.
GRIDS += [f"sample.prompts={PROMPTS}", "train.cpu_threads=1"]


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return write_tiny_coco(tmp_path_factory.mktemp("coco"), count=6)


@pytest.fixture(scope="module")
def run_dir(sd_folder, coco, tmp_path_factory):
    config = sd_config(sd_folder, coco, tmp_path_factory.mktemp("grids"), *GRIDS)
    return train(config, tensorboard=False)


def read_grid(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_grids_are_written_at_every_sample_every(run_dir):
    names = sorted(p.name for p in (run_dir / "samples").iterdir())
    assert names == [f"step-00000{k}-{tag}.png" for k in (2, 4) for tag in ("ema", "raw")]


@pytest.mark.parametrize("weights", ["ema", "raw"])
def test_a_grid_is_prompt_images_of_its_weights(run_dir, weights):
    images = prompt_images(load_run(run_dir, weights=weights), PROMPTS, num=3, seed=0)
    grid = read_grid(run_dir / "samples" / f"step-000004-{weights}.png")
    np.testing.assert_array_equal(grid, image_grid(images, ncol=len(PROMPTS)))
    assert grid.shape[1] == 1 + len(PROMPTS) * (images.shape[-1] + 1)  # one column per prompt


def test_the_ema_and_raw_grids_differ(run_dir):
    ema, raw = (read_grid(run_dir / "samples" / f"step-000004-{w}.png") for w in ("ema", "raw"))
    assert not np.array_equal(ema, raw)


def test_grids_do_not_change_the_losses(sd_folder, coco, run_dir, tmp_path):
    config = sd_config(sd_folder, coco, tmp_path, *GRIDS, "train.sample_every=0")
    plain = train(config, tensorboard=False)
    assert not (plain / "samples").exists()
    assert len(losses(run_dir)) == 4
    assert losses(plain) == losses(run_dir)


def test_non_finite_samples_are_warned_about_and_not_saved(sd_folder, coco, tmp_path):
    s = open_sd_session(sd_config(sd_folder, coco, tmp_path, *GRIDS))
    with torch.no_grad():
        for p in s.state.ema.module.parameters():
            p.fill_(float("nan"))
    assert s.state.model.unet.training  # diffusers loads it in eval mode
    with pytest.warns(UserWarning, match="non-finite ema samples at step 7; grid not saved"):
        written = save_samples(s, 7)
    assert s.state.model.unet.training
    assert written == [s.run_dir / "samples" / "step-000007-raw.png"]
    assert [p.name for p in (s.run_dir / "samples").iterdir()] == ["step-000007-raw.png"]


def test_two_ranks_draw_the_grids_of_one(sd_folder, coco, tmp_path, monkeypatch):
    s = open_sd_session(sd_config(sd_folder, coco, tmp_path, *GRIDS))
    single = [read_grid(path) for path in save_samples(s, 1)]
    pending, drawn = [], []  # rank 1's parts, in call order; rows each rank sampled

    def gather(x, num):  # rank 0 gathers rank 1's part after its own
        drawn.append(x.shape[0])
        if distributed.rank() == 1:
            pending.append(x)
            return None
        return torch.cat([x, pending.pop(0)])[:num]

    monkeypatch.setattr(hooks, "gather_rows", gather)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    written = {}
    for r in (1, 0):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        written[r] = save_samples(s, 2)
    assert written[1] == [] and drawn == [2, 2, 2, 2]  # 3 images: 2 a rank, 1 padding
    for path, image in zip(written[0], single, strict=True):
        np.testing.assert_array_equal(read_grid(path), image)


def test_grids_without_prompts_are_refused(sd_folder, coco, tmp_path):
    with pytest.raises(ConfigError, match="'sample.prompts' must be at least one prompt with "
                       "train.sample_every > 0"):  # fmt: skip
        sd_config(sd_folder, coco, tmp_path, "train.sample_every=2", "sample.prompts=[]")
    config = sd_config(sd_folder, coco, tmp_path, "train.sample_every=0", "sample.prompts=[]")
    assert config.sample.prompts == []


def test_prompts_are_refused_for_a_run_that_is_not_stable_diffusion():
    with pytest.raises(ConfigError, match="'sample.prompts' must be empty without model.pre"):
        load_config("digits", ["sample.prompts=[a cat]"])
    assert load_config("digits").sample.prompts == []


@pytest.mark.parametrize("value", ["a cat", "[a cat, 3]"])
def test_prompts_must_be_a_list_of_strings(value):
    with pytest.raises(ConfigError, match="'sample.prompts' expects a list, each item a string"):
        load_config("digits", [f"sample.prompts={value}"])


def test_the_recipe_samples_its_prompts_every_1000_steps():
    config = load_config("sd-v1-4-coco", ["model.pretrained=sd", "data.root=coco"])
    assert config.train.sample_every == 1000
    assert "a photo of a cat sitting on a couch" in config.sample.prompts
