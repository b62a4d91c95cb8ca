"""Stable Diffusion fine-tuning with the trainer, on tiny components and a tiny COCO folder:
the exported diffusers folder loads in diffusers and holds the run's EMA UNet, resume repeats
the losses, caption dropout uses the empty prompt's embedding, only the UNet trains."""

from __future__ import annotations

import pytest
import torch

from difflab.conditioning import Condition
from difflab.config.recipes import load_config
from difflab.core.errors import ConfigError
from difflab.integrations.stable_diffusion import TextEncoder, export_run, load_unet
from difflab.integrations.stable_diffusion.session import open_sd_session
from difflab.runs.checkpoint import load_latest_checkpoint
from difflab.runs.metrics import read_metrics
from difflab.training.loop import train
from difflab.training.step import MicroBatch, micro_batch_loss, train_step

from .tiny_coco import write_tiny_coco
from .tiny_sd import IMAGE_SIZE

diffusers = pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return write_tiny_coco(tmp_path_factory.mktemp("coco"), count=6)


def sd_config(sd_folder, coco, tmp_path, *overrides):
    return load_config(
        "sd-v1-4-coco",
        [
            f"model.pretrained={sd_folder}",
            f"data.root={coco}",
            f"data.image_size={IMAGE_SIZE}",
            "data.num_workers=0",
            f"run.root={tmp_path}",
            "train.steps=4",
            "train.batch_size=2",
            "train.lr=1e-3",
            "train.warmup_steps=0",
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


def losses(run_dir) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir) if "loss" in r]


def test_exported_folder_loads_in_diffusers_with_the_runs_ema_unet(sd_folder, coco, tmp_path):
    run_dir = train(sd_config(sd_folder, coco, tmp_path), tensorboard=False)
    out = export_run(run_dir)
    assert out == run_dir / "diffusers"
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(out, local_files_only=True)
    ema = load_latest_checkpoint(run_dir, with_state=False).ema
    start = load_unet(sd_folder).state_dict()
    exported = pipe.unet.state_dict()
    assert exported.keys() == start.keys()
    for key, value in exported.items():
        torch.testing.assert_close(value, ema[f"unet.{key}"], rtol=0, atol=0)
    moved = [k for k in start if not torch.equal(start[k], exported[k])]
    assert len(moved) > len(start) // 2
    base_vae = diffusers.AutoencoderKL.from_pretrained(sd_folder / "vae")
    for key, value in pipe.vae.state_dict().items():
        assert torch.equal(value, base_vae.state_dict()[key])


def test_resume_repeats_the_losses(sd_folder, coco, tmp_path):
    straight = train(sd_config(sd_folder, coco, tmp_path / "a"), tensorboard=False)
    config = sd_config(sd_folder, coco, tmp_path / "b")
    stopped = train(config, tensorboard=False, stop_at=2)
    config.train.resume = str(stopped)
    resumed = train(config, tensorboard=False)
    assert len(losses(straight)) == 4
    assert losses(resumed) == losses(straight)


def test_caption_dropout_gives_the_empty_prompts_embedding(sd_folder, coco, tmp_path):
    s = open_sd_session(sd_config(sd_folder, coco, tmp_path, "train.cond_dropout=1"))
    batch = s.data.micro_batch(0, torch.Generator().manual_seed(0))
    null = Condition(text=TextEncoder.from_folder(sd_folder).encode(["", ""]))
    with torch.no_grad():
        expected = micro_batch_loss(
            s.state, MicroBatch(batch.x0, null), torch.Generator().manual_seed(1), 0.0
        )
        kept = micro_batch_loss(s.state, batch, torch.Generator().manual_seed(1), 0.0)
    dropped, _ = train_step(s.state, [batch], torch.Generator().manual_seed(1), 0)
    torch.testing.assert_close(dropped, expected)
    assert not torch.allclose(dropped, kept)


def test_batches_are_the_vae_latents_and_clip_text_of_the_items(sd_folder, coco, tmp_path):
    s = open_sd_session(sd_config(sd_folder, coco, tmp_path))
    batch = s.data.micro_batch(1, torch.Generator().manual_seed(0))
    rows = s.data.indices(1).tolist()
    items = [s.data.stream.dataset[(0, i)] for i in rows]
    images = torch.stack([item.image for item in items]).float() / 127.5 - 1
    torch.testing.assert_close(batch.x0, s.codec.encode(images))
    text = TextEncoder.from_folder(sd_folder).encode([item.caption for item in items])
    torch.testing.assert_close(batch.cond.text, text)
    assert batch.x0.shape == (2, 4, IMAGE_SIZE // 2, IMAGE_SIZE // 2)


def test_only_the_unet_trains(sd_folder, coco, tmp_path):
    s = open_sd_session(sd_config(sd_folder, coco, tmp_path))
    trained = {id(p) for group in s.state.optimizer.param_groups for p in group["params"]}
    assert trained == {id(p) for p in s.denoiser.network.unet.parameters()}
    assert not any(p.requires_grad for p in s.codec.parameters())
    assert not any(p.requires_grad for p in s.data.text.parameters())


def test_a_config_that_disagrees_with_the_folders_scheduler_is_refused(sd_folder, coco, tmp_path):
    config = sd_config(sd_folder, coco, tmp_path, "model.parameterization=v")
    with pytest.raises(ConfigError, match="'model.parameterization' is 'v' but .*says 'eps'"):
        open_sd_session(config)
    assert not any(tmp_path.iterdir())


def test_an_image_size_the_vae_cannot_take_names_the_key(sd_folder, coco, tmp_path):
    config = sd_config(sd_folder, coco, tmp_path, f"data.image_size={IMAGE_SIZE - 1}")
    with pytest.raises(ConfigError, match=r"divisible by 2.*'data.image_size'"):
        open_sd_session(config)
    assert not any(tmp_path.iterdir())


def test_finetune_sd_command_trains_then_exports(sd_folder, coco, tmp_path, capsys):
    from difflab.cli.main import main

    items = [f"model.pretrained={sd_folder}", f"data.root={coco}", f"run.root={tmp_path}"]
    items += [f"data.image_size={IMAGE_SIZE}", "data.num_workers=1", "train.steps=1"]
    items += ["train.batch_size=2", "train.device=cpu", "train.progress=false"]
    items += ["sample.steps=2", "sample.num=2"]  # the recipe's prompts, grids at the end
    assert main(["finetune-sd", "sd-v1-4-coco", *items]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "sd-v1-4-coco" / "samples" / "step-000001-ema.png").is_file()
    assert f"diffusers pipeline: {tmp_path / 'sd-v1-4-coco' / 'diffusers'}" in out
    assert (tmp_path / "sd-v1-4-coco" / "diffusers" / "unet" / "config.json").is_file()
    assert main(["finetune-sd", "digits"]) == 2
    assert "finetune-sd takes a Stable Diffusion recipe" in capsys.readouterr().err
    assert main(["finetune-sd", "sd-v1-4-coco", f"data.root={coco}"]) == 2
    assert "'model.pretrained'" in capsys.readouterr().err


def test_the_run_records_the_pretrained_folder_as_an_absolute_path(
    sd_folder, coco, tmp_path, monkeypatch
):
    import os

    monkeypatch.chdir(tmp_path)
    relative = os.path.relpath(sd_folder, tmp_path)
    s = open_sd_session(sd_config(sd_folder, coco, tmp_path, f"model.pretrained={relative}"))
    assert s.config.model.pretrained == str(sd_folder.resolve())
    assert f"pretrained: {sd_folder.resolve()}" in (s.run_dir / "config.yaml").read_text()


def test_flips_act_on_images_before_encoding(sd_folder, coco, tmp_path):
    config = sd_config(sd_folder, coco, tmp_path, "data.flip=true", "train.batch_size=6")
    s = open_sd_session(config)
    batch = s.data.micro_batch(0, torch.Generator().manual_seed(0))
    items = [s.data.stream.dataset[(0, i)] for i in s.data.indices(0).tolist()]
    images = torch.stack([item.image for item in items]).float() / 127.5 - 1
    plain, mirrored = s.codec.encode(images), s.codec.encode(images.flip(-1))
    flipped = [torch.allclose(z, m) and not torch.allclose(z, p) for z, p, m in
               zip(batch.x0, plain, mirrored, strict=True)]  # fmt: skip
    kept = [torch.allclose(z, p) for z, p in zip(batch.x0, plain, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert any(flipped) and any(kept)


def test_a_posterior_sample_is_the_steps_draw_whatever_the_world_size(sd_folder, coco, tmp_path):
    """With model.latent.sample_posterior, a row's latents come from the step's generator (so
    resume is exact), not the global RNG, and do not depend on the rank that encodes it."""
    from difflab.integrations.stable_diffusion.data import CaptionedLatents
    from difflab.training.stream import StreamingData

    config = sd_config(sd_folder, coco, tmp_path, "model.latent.sample_posterior=true")
    s = open_sd_session(config)
    first = s.data.micro_batch(0, torch.Generator().manual_seed(0)).x0
    torch.manual_seed(123)  # the global RNG is not the step's
    again = s.data.micro_batch(0, torch.Generator().manual_seed(0)).x0
    torch.testing.assert_close(again, first, rtol=0, atol=0)
    assert not torch.equal(s.data.micro_batch(0, torch.Generator().manual_seed(1)).x0, first)
    dataset, seed = s.data.stream.dataset, s.data.stream.seed
    stream = StreamingData(
        dataset, batch_size=2, seed=seed, num_workers=0, max_bad_fraction=0, rank=1, world=2
    )
    rank1 = CaptionedLatents(stream, s.codec, s.data.text, flip=False, device=torch.device("cpu"))
    second_row = rank1.micro_batch(0, torch.Generator().manual_seed(0)).x0
    # a batch of 1 takes other kernels than a batch of 2: float rounding apart
    torch.testing.assert_close(second_row, first[1:], rtol=1e-4, atol=1e-4)
