"""bench/sd_speed.py runs end to end on CPU with the tiny SD UNet (a smoke test, not a timing
test): both libraries train and sample the same UNet, and their sampled latents agree."""

import importlib

import pytest

TINY = ["--device", "cpu", "--tiny", "--batch", "2", "--steps", "1", "--warmup", "1"]
TINY += ["--repeats", "1", "--sample-steps", "2"]


@pytest.fixture(scope="module")
def sd_speed(bench_script):
    return bench_script("sd_speed")


def test_tiny_run_measures_both_libraries_and_they_agree(sd_speed, capsys):
    pytest.importorskip("diffusers")
    bench = sd_speed.main(TINY)
    assert [(r.kind, r.setting) for r in bench.rows] == [
        ("train", "diffusers:eager"),
        ("train", "difflab:default"),
        ("sample", "diffusers:eager"),
        ("sample", "difflab:default"),
    ]
    assert all(r.error is None and r.images_per_s > 0 and r.ratio > 0 for r in bench.rows)
    # The same UNet: the same FLOPs per image; guided sampling is two forwards per image.
    assert bench.rows[0].gflop_per_image == bench.rows[1].gflop_per_image > 0
    assert bench.rows[2].gflop_per_image == bench.rows[3].gflop_per_image > 0
    assert bench.max_abs_diff < 1e-4
    out = capsys.readouterr().out
    assert "| train | difflab:default | 2 |" in out
    assert "| sample | diffusers:eager | 2 |" in out
    assert "max abs(difflab - diffusers)" in out


def test_the_float32_latents_are_sampled_not_the_initial_noise(sd_speed):
    pytest.importorskip("diffusers")
    bench = sd_speed.make_bench(sd_speed.parse_args(TINY))
    bench.fp32 = True
    step = sd_speed.build_step(bench, "sample", "diffusers:eager", 2)
    noise = importlib.import_module("sd_speed_steps").make_inputs(bench.size, 2, bench.device)
    assert (step(0) - noise.noise).abs().max() > 1e-2


def test_without_diffusers_it_says_so_and_exits_2(sd_speed, monkeypatch, capsys):
    monkeypatch.setattr(sd_speed, "diffusers_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        sd_speed.main(TINY)
    assert exit_info.value.code == 2
    assert "diffusers" in capsys.readouterr().out


def test_full_size_is_the_sd_v1_unet(sd_speed):
    pytest.importorskip("diffusers")
    import torch

    steps = importlib.import_module("sd_speed_steps")
    unet = steps.make_unet(steps.FULL, torch.device("meta"))
    assert sum(p.numel() for p in unet.parameters()) == 859_520_964  # SD v1.5's UNet
    assert unet.config.cross_attention_dim == steps.FULL.text_dim == 768
