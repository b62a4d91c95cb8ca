"""bench/samplers.py runs end to end on CPU (a smoke test: a 2-step digits run, so the numbers
mean nothing), and the sampling benchmarks score a run against its own dataset's splits."""

from types import SimpleNamespace

import pytest

from difflab.config.recipes import load_config


@pytest.fixture(scope="module")
def bench(bench_script):
    return SimpleNamespace(samplers=bench_script("samplers"), setup=bench_script("sampling_setup"))


def test_table_counts_each_samplers_calls(bench, tmp_path, capsys):
    bench.setup.seed_quick_cache(tmp_path)
    argv = ["--cache", str(tmp_path), "--num", "10", "--samplers", "ddim", "heun"]
    bench.samplers.main([*argv, "--calls", "4"])
    out = capsys.readouterr().out
    assert "of digits/test (297 images) vs train" in out
    rows = [line.split("|")[1:4] for line in out.splitlines() if line.startswith("| ")]
    rows = [[cell.strip() for cell in row] for row in rows[2:]]
    assert rows[0] == ["ddim", "4", "4"]
    # heun: 2 steps, each one call (Euler past max_ratio, the last into clean data) or two
    assert rows[1][0] == "heun" and rows[1][2] == "2" and 2 <= int(rows[1][1]) <= 4


def test_splits_are_the_runs_dataset_at_its_size_from_the_given_root(bench, shared_data):
    config = load_config("mnist", ["data.root=/nowhere"])
    run = SimpleNamespace(config=config, image_shape=(1, 28, 28))
    train, test = bench.setup.run_splits(run, shared_data / "mnist")
    assert (train.name, train.split, len(train)) == ("mnist", "train", 60000)
    assert (test.split, len(test), tuple(test.images.shape[1:])) == ("test", 10000, (1, 28, 28))
    small = SimpleNamespace(config=config, image_shape=(1, 16, 16))
    _, resized = bench.setup.run_splits(small, shared_data / "mnist")
    assert tuple(resized.images.shape[1:]) == (1, 16, 16)
