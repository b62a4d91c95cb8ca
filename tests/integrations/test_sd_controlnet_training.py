"""Training a ControlNet on Stable Diffusion with the trainer (tiny components, a tiny COCO
folder): only the ControlNet trains, caption dropout replaces half the prompts by the empty one
and never drops a hint, resume is exact, the export loads in diffusers' ControlNet pipeline and
`difflab sample --prompt --hint-map` samples the run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from difflab.config.recipes import load_config
from difflab.core.condition import Condition
from difflab.integrations.stable_diffusion import TextEncoder, export_run
from difflab.integrations.stable_diffusion.session import open_sd_session
from difflab.runs.checkpoint import load_latest_checkpoint
from difflab.runs.metrics import read_metrics
from difflab.training.loop import train
from difflab.training.step import MicroBatch, micro_batch_loss

from .tiny_coco import write_tiny_coco
from .tiny_sd import IMAGE_SIZE, TEXT_DIM

diffusers = pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return write_tiny_coco(tmp_path_factory.mktemp("coco"), count=6)


# random: resume must repeat its draws; with edges on the smooth tiny images, and breaks and
# widths that vary with the draws
SCRIBBLE = [
    "model.controlnet.hint=scribble",
    "model.controlnet.hint_options.threshold=0.01",
    "model.controlnet.hint_options.break_rate=0.3",
    "model.controlnet.hint_options.max_radius=2",
]


def cn_config(sd_folder, coco, tmp_path, *overrides, hint=tuple(SCRIBBLE)):
    return load_config(
        "sd-controlnet-coco",
        [
            f"model.pretrained={sd_folder}",
            f"data.root={coco}",
            f"data.image_size={IMAGE_SIZE}",
            "data.num_workers=0",
            f"run.root={tmp_path}",
            *hint,
            "train.steps=4",
            "train.batch_size=2",
            "train.lr=1e-3",
            "train.ema_decay=0.5",
            "train.checkpoint_every=2",
            "train.log_every=1",
            "train.device=cpu",
            "train.precision=fp32",
            "train.compile=off",
            "train.progress=false",
            "train.sample_every=0",
            *overrides,
        ],
    )


@pytest.fixture(scope="module")
def run_dir(sd_folder, coco, tmp_path_factory):
    return train(cn_config(sd_folder, coco, tmp_path_factory.mktemp("runs")), tensorboard=False)


def losses(run_dir) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir) if "loss" in r]


def test_only_the_controlnet_trains(sd_folder, coco, tmp_path):
    s = open_sd_session(cn_config(sd_folder, coco, tmp_path))
    trained = {id(p) for group in s.state.optimizer.param_groups for p in group["params"]}
    assert trained == {id(p) for p in s.denoiser.network.controlnet.parameters()}
    assert not any(p.requires_grad for p in s.denoiser.network.unet.parameters())


def test_caption_dropout_is_half_the_prompts_and_never_the_hints(sd_folder, coco, tmp_path):
    """The recipe's rate (the paper's 50%), on a batch of 400 rows: dropped rows get the empty
    prompt's embedding, kept rows their own, every row its own hint."""
    s = open_sd_session(cn_config(sd_folder, coco, tmp_path))
    assert s.state.cond_dropout == 0.5 and s.state.keep_hint
    n, g = 400, torch.Generator().manual_seed(0)
    text = torch.randn(n, 77, TEXT_DIM, generator=g)
    hint = torch.rand(n, 1, IMAGE_SIZE, IMAGE_SIZE, generator=g) * 2 - 1
    seen = {}

    def record(x, t_net, cond):  # the network the loss calls
        seen["cond"] = cond
        return torch.zeros_like(x)

    s.state.forward = record
    batch = MicroBatch(torch.zeros(n, 4, 8, 8), Condition(text=text, hint=hint))
    micro_batch_loss(s.state, batch, g, s.state.cond_dropout, s.state.null_text)
    cond = seen["cond"]
    null = TextEncoder.from_folder(sd_folder).null_text
    dropped = (cond.text == null).flatten(1).all(1)
    kept = (cond.text == text).flatten(1).all(1)
    assert bool((dropped ^ kept).all())
    assert 0.42 < dropped.float().mean() < 0.58  # 50% +- 3.2 binomial standard deviations
    assert torch.equal(cond.hint, hint)


def test_batches_carry_the_hints_of_their_images(sd_folder, coco, tmp_path):
    s = open_sd_session(cn_config(sd_folder, coco, tmp_path, hint=["model.controlnet.hint=blur"]))
    batch = s.data.micro_batch(1, torch.Generator().manual_seed(0))
    items = [s.data.stream.dataset[(0, i)] for i in s.data.indices(1).tolist()]
    images = torch.stack([item.image for item in items]).float() / 127.5 - 1
    blurred = torch.nn.functional.avg_pool2d(images, 4)
    expected = torch.nn.functional.interpolate(blurred, size=IMAGE_SIZE, mode="bilinear")
    torch.testing.assert_close(batch.cond.hint, expected)
    assert batch.x0.shape == (2, 4, IMAGE_SIZE // 2, IMAGE_SIZE // 2)


def test_resume_repeats_the_losses(sd_folder, coco, run_dir, tmp_path):
    config = cn_config(sd_folder, coco, tmp_path)
    stopped = train(config, tensorboard=False, stop_at=2)
    config.train.resume = str(stopped)
    resumed = train(config, tensorboard=False)
    assert len(losses(run_dir)) == 4
    assert losses(resumed) == losses(run_dir)


def test_exported_controlnet_loads_in_the_diffusers_pipeline(sd_folder, run_dir):
    out = export_run(run_dir)
    assert out == run_dir / "controlnet"
    controlnet = diffusers.ControlNetModel.from_pretrained(out, local_files_only=True)
    ema = load_latest_checkpoint(run_dir, with_state=False).ema
    assert ema.keys() == {f"controlnet.{key}" for key in controlnet.state_dict()}
    for key, value in controlnet.state_dict().items():
        assert torch.equal(value, ema[f"controlnet.{key}"]), key
    pipe = diffusers.StableDiffusionControlNetPipeline.from_pretrained(
        sd_folder, controlnet=controlnet, local_files_only=True, safety_checker=None
    )
    pipe.set_progress_bar_config(disable=True)
    image = torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    latents = pipe("a cat", image=image, num_inference_steps=2, output_type="latent").images
    assert latents.shape == (1, 4, IMAGE_SIZE // 2, IMAGE_SIZE // 2)


def test_sample_command_takes_hint_maps(run_dir, tmp_path, capsys):
    from difflab.cli.main import main

    edges = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    edges[4:12, 8] = 255
    Image.fromarray(edges).save(tmp_path / "edges.png")
    out = tmp_path / "out.png"
    args = ["sample", str(run_dir), "--prompt", "a cat", "--num", "2", "--steps", "2"]
    assert main([*args, "--hint-map", str(tmp_path / "edges.png"), "--out", str(out)]) == 0
    assert out.is_file()
    assert main([*args, "--out", str(out)]) == 2
    assert "--hint-map" in capsys.readouterr().err
    Image.fromarray(edges[:8]).save(tmp_path / "short.png")
    assert main([*args, "--hint-map", str(tmp_path / "short.png"), "--out", str(out)]) == 2
    assert "short.png" in capsys.readouterr().err


def test_finetune_sd_trains_with_hinted_grids_then_exports(sd_folder, coco, tmp_path, capsys):
    from difflab.cli.main import main

    items = [f"model.pretrained={sd_folder}", f"data.root={coco}", f"run.root={tmp_path}"]
    items += [f"data.image_size={IMAGE_SIZE}", "data.num_workers=0", "train.steps=1"]
    items += ["train.batch_size=2", "train.device=cpu", "train.progress=false"]
    items += ["model.controlnet.hint=blur", "sample.steps=2", "sample.num=2"]
    assert main(["finetune-sd", "sd-controlnet-coco", *items]) == 0
    run = tmp_path / "sd-controlnet-coco"
    assert (run / "samples" / "step-000001-ema.png").is_file()
    assert f"diffusers ControlNet: {run / 'controlnet'}" in capsys.readouterr().out
    assert (run / "controlnet" / "config.json").is_file()
