"""Export to diffusers' folder format: StableDiffusionPipeline loads the folder, its UNet holds
exactly the given weights and its frozen parts are the source's files."""

from __future__ import annotations

import shutil

import pytest
import torch

from difflab.core.errors import CheckpointError
from difflab.integrations.stable_diffusion import export_pipeline, load_unet

diffusers = pytest.importorskip("diffusers")


def shifted_weights(sd_folder) -> dict[str, torch.Tensor]:
    return {k: v + 0.01 for k, v in load_unet(sd_folder).state_dict().items()}


def test_exported_pipeline_loads_with_the_given_unet_weights(sd_folder, tmp_path):
    weights = shifted_weights(sd_folder)
    out = export_pipeline(sd_folder, weights, tmp_path / "run" / "diffusers")
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(out, local_files_only=True)
    loaded = pipe.unet.state_dict()
    assert loaded.keys() == weights.keys()
    for key, value in weights.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)
    for part in ("vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        assert (out / part).read_bytes() == (sd_folder / part).read_bytes()


def test_export_replaces_an_earlier_one_whole(sd_folder, tmp_path):
    out = tmp_path / "diffusers"
    export_pipeline(sd_folder, load_unet(sd_folder).state_dict(), out)
    (out / "stale.txt").write_text("from the earlier export")
    export_pipeline(sd_folder, shifted_weights(sd_folder), out)
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diffusers"]


def test_weights_of_another_network_are_refused(sd_folder, tmp_path):
    with pytest.raises(CheckpointError, match="do not fit the UNet"):
        export_pipeline(sd_folder, {"conv.weight": torch.zeros(1)}, tmp_path / "out")
    assert not any(tmp_path.iterdir())  # no half-written .out.tmp left behind


def test_export_over_the_leftovers_of_an_interrupted_one(sd_folder, tmp_path):
    """An export killed after moving the earlier one aside and placing the new one, before
    deleting the earlier one, leaves .diffusers.old: the next export still replaces out."""
    out = tmp_path / "diffusers"
    export_pipeline(sd_folder, load_unet(sd_folder).state_dict(), out)
    (tmp_path / ".diffusers.old" / "unet").mkdir(parents=True)
    weights = shifted_weights(sd_folder)
    export_pipeline(sd_folder, weights, out)
    unet = diffusers.UNet2DConditionModel.from_pretrained(out / "unet")
    torch.testing.assert_close(unet.state_dict()["conv_in.weight"], weights["conv_in.weight"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diffusers"]


def test_saving_over_the_export_leaves_the_pretrained_folder_unchanged(sd_folder, tmp_path):
    """diffusers' save_pretrained rewrites config files in place (and safetensors before 0.8
    weights): a file hard-linked to the pretrained folder would change there too (here: the
    scheduler swapped, then the pipeline saved over its export)."""
    source = shutil.copytree(sd_folder, tmp_path / "sd")
    before = {p: p.read_bytes() for p in source.rglob("*") if p.is_file()}
    out = export_pipeline(source, shifted_weights(source), tmp_path / "diffusers")
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(out, local_files_only=True)
    pipe.scheduler = diffusers.EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.text_encoder.config.torch_dtype = "float16"
    pipe.save_pretrained(out, safe_serialization=True)
    assert "Euler" in (out / "scheduler" / "scheduler_config.json").read_text()
    assert {p: p.read_bytes() for p in source.rglob("*") if p.is_file()} == before
