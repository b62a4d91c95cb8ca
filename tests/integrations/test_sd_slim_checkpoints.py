"""Slim checkpoints of Stable Diffusion runs with a frozen UNet (runs/frozen.py), on tiny
components: a LoRA run's and a ControlNet run's weights files hold only what trains, loading
rebuilds the frozen part from model.pretrained into the network a full checkpoint gives, an
old full checkpoint still loads and resumes as the slim one, and a changed or missing
pretrained UNet is refused naming the folder."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from difflab.cli.main import main
from difflab.config.plugins import network_plugin
from difflab.core.errors import CheckpointError, DataError
from difflab.core.hashing import file_sha256
from difflab.integrations.stable_diffusion import export_run, load_unet
from difflab.integrations.stable_diffusion.folder import weights_files
from difflab.runs.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from difflab.runs.frozen import FROZEN_KEY
from difflab.runs.load import load_run
from difflab.training.loop import train

from .test_sd_controlnet_training import cn_config
from .test_sd_lora import LORA
from .test_sd_training import coco, losses, sd_config  # noqa: F401  (coco: a fixture)
from .tiny_sd import LATENT_SIZE

pytest.importorskip("diffusers")
pytest.importorskip("peft")

UNET_FILE = "unet/diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def lora_run(sd_folder, coco, tmp_path_factory):  # noqa: F811
    return train(
        sd_config(sd_folder, coco, tmp_path_factory.mktemp("lora"), *LORA), tensorboard=False
    )


@pytest.fixture(scope="module")
def cn_run(sd_folder, coco, tmp_path_factory):  # noqa: F811
    return train(cn_config(sd_folder, coco, tmp_path_factory.mktemp("cn")), tensorboard=False)


def fresh_network(run_dir):
    """The run's network as its plug-in builds it: the frozen part read from model.pretrained."""
    model = load_run(run_dir).config.model
    return network_plugin(model.network).build_network(model, 4, LATENT_SIZE)


@pytest.mark.parametrize("name", ["model", "ema"])
def test_a_lora_checkpoint_holds_the_adapters_alone(sd_folder, lora_run, name):
    """Only A and B of the adapted projections, a file far smaller than the UNet's weights, and
    a record naming the pretrained folder and its UNet file's sha256."""
    file = latest_checkpoint(lora_run) / f"{name}.safetensors"
    tensors = load_file(file)
    assert len(tensors) == 64 and all(
        k.endswith((".lora_A.default.weight", ".lora_B.default.weight")) for k in tensors
    )
    unet_bytes = sum(4 * v.numel() for v in load_unet(sd_folder).state_dict().values())
    assert file.stat().st_size < unet_bytes / 10
    with safe_open(str(file), "pt") as f:
        record = json.loads(f.metadata()[FROZEN_KEY])
    assert record["folder"] == str(sd_folder)
    assert record["sha256"] == {UNET_FILE: file_sha256(sd_folder / UNET_FILE)}


@pytest.mark.parametrize("name", ["model", "ema"])
def test_a_controlnet_checkpoint_holds_the_controlnet_alone(cn_run, name):
    tensors = load_file(latest_checkpoint(cn_run) / f"{name}.safetensors")
    controlnet = fresh_network(cn_run).controlnet.state_dict()
    assert tensors.keys() == {f"controlnet.{k}" for k in controlnet}


@pytest.mark.parametrize("run", ["lora_run", "cn_run"])
@pytest.mark.parametrize("weights", ["raw", "ema"])
def test_a_slim_checkpoint_loads_over_the_pretrained_part(run, weights, request):
    """load_run's network is the freshly built one (its frozen part read from the pretrained
    folder) with every saved tensor put over it: the network a full checkpoint would give."""
    run_dir = request.getfixturevalue(run)
    saved = load_checkpoint(latest_checkpoint(run_dir)).weights(
        "ema" if weights == "ema" else "model"
    )
    expected = {**fresh_network(run_dir).state_dict(), **saved.tensors}
    loaded = load_run(run_dir, weights=weights).denoiser.network.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.items())


def make_full(run_dir) -> None:
    """Rewrite run_dir's newest checkpoint as before slim checkpoints: every tensor, no record."""
    path = latest_checkpoint(run_dir)
    ckpt = load_checkpoint(path)
    model, ema = (
        load_run(run_dir, weights=w).denoiser.network.state_dict() for w in ("raw", "ema")
    )
    state = {k: v for k, v in ckpt.state.items() if k != "step"}
    save_checkpoint(path.parent, ckpt.step, model=model, ema=ema, state=state, keep=10)


def test_an_old_full_checkpoint_loads_resumes_and_exports_as_the_slim_one(
    sd_folder,
    coco,  # noqa: F811
    tmp_path,
):
    slim = train(sd_config(sd_folder, coco, tmp_path / "slim", *LORA), tensorboard=False, stop_at=2)
    full = shutil.copytree(slim, tmp_path / "full")
    make_full(full)
    assert len(load_checkpoint(latest_checkpoint(full)).ema) > 64  # the frozen UNet too
    for weights in ("raw", "ema"):
        a = load_run(slim, weights=weights).denoiser.network.state_dict()
        b = load_run(full, weights=weights).denoiser.network.state_dict()
        assert all(torch.equal(v, b[k]) for k, v in a.items())
    exported = [load_file(next(export_run(run).iterdir())) for run in (slim, full)]
    assert all(torch.equal(v, exported[1][k]) for k, v in exported[0].items())
    resumed = []
    for run in (slim, full):
        config = sd_config(sd_folder, coco, tmp_path, *LORA)
        config.train.resume = str(run)
        resumed.append(losses(train(config, tensorboard=False)))
    assert len(resumed[0]) == 4 and resumed[0] == resumed[1]


def test_a_changed_or_missing_pretrained_unet_is_refused(sd_folder, coco, tmp_path):  # noqa: F811
    """The same names and shapes, one weight moved by 1e-3: load_run, export and resume refuse
    the slim checkpoint in one line naming the folder; without the file, loading names it."""
    folder = shutil.copytree(sd_folder, tmp_path / "sd")
    config = sd_config(folder, coco, tmp_path / "runs", *LORA, "train.steps=2")
    run_dir = train(config, tensorboard=False)
    unet = load_file(folder / UNET_FILE)
    key = next(iter(unet))
    save_file({**unet, key: unet[key] + 1e-3}, folder / UNET_FILE, metadata={"format": "pt"})
    message = rf"frozen weights \['{UNET_FILE}'\] in {folder} differ .* \(sha256 mismatch\)"
    for load in (load_run, export_run):
        with pytest.raises(CheckpointError, match=message) as err:
            load(run_dir)
        assert "\n" not in str(err.value)
    config.train.resume, config.train.steps = str(run_dir), 4
    with pytest.raises(CheckpointError, match=message):
        train(config, tensorboard=False)
    (folder / UNET_FILE).unlink()
    with pytest.raises(DataError, match=f"{folder / 'unet'} has no diffusion_pytorch_model"):
        load_run(run_dir)


def test_a_lora_runs_ema_snapshots_and_posthoc_ema_are_slim(sd_folder, coco, tmp_path):  # noqa: F811
    """The power-function EMA's snapshots hold the adapter alone with the record; `difflab ema`
    keeps both, and load_run of its file puts the combined adapter over the pretrained UNet."""
    posthoc = ["train.ema_sigma_rel=0.1", "train.ema_snapshot_every=1", "train.ema_start=1"]
    run_dir = train(sd_config(sd_folder, coco, tmp_path, *LORA, *posthoc), tensorboard=False)
    snapshots = sorted((run_dir / "ema-snapshots").iterdir())
    assert snapshots and all(len(load_file(s)) == 64 for s in snapshots)
    assert main(["ema", str(run_dir), "--sigma-rel", "0.05"]) == 0
    (file,) = (run_dir / "ema-posthoc").iterdir()
    with safe_open(str(file), "pt") as f:
        assert json.loads(f.metadata()[FROZEN_KEY])["folder"] == str(sd_folder)
    combined = load_file(file)
    assert combined.keys() == load_file(snapshots[-1]).keys()
    expected = {**fresh_network(run_dir).state_dict(), **combined}
    loaded = load_run(run_dir, weights=str(file)).denoiser.network.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.items())


def test_the_frozen_files_of_a_sharded_unet_are_its_index_and_shards(tmp_path):
    unet = tmp_path / "sd" / "unet"
    unet.mkdir(parents=True)
    (unet / "config.json").write_text("{}")
    weight_map = {"a": "part-2.safetensors", "b": "part-1.safetensors", "c": "part-2.safetensors"}
    index = unet / "diffusion_pytorch_model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": weight_map}))
    assert weights_files(tmp_path / "sd", "unet", "diffusion_pytorch_model.safetensors") == (
        "unet/diffusion_pytorch_model.safetensors.index.json",
        "unet/part-1.safetensors",
        "unet/part-2.safetensors",
    )
