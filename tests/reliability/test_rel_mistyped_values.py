"""Values a user can mistype end in one line naming the key or file, before long work: run
names and roots that leave run.root, absurd thread counts and widths, allocation failures,
an output path that cannot be written, an --inception file that is not TorchScript."""

from pathlib import Path

import pytest

from difflab.cli import eval as eval_command
from difflab.cli.main import main
from difflab.config.recipes import load_config
from difflab.training import loop
from difflab.training.loop import train

TINY = str(Path(__file__).parents[1] / "training" / "tiny.yaml")
FAST = ["train.sample_every=0", "train.val_every=0", "train.batch_size=4", "train.steps=2"]


def _one_line(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("difflab: error: "), err
    return err


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    return train(load_config(TINY, [*FAST, f"run.root={root}"]), tensorboard=False)


@pytest.mark.parametrize(
    "override,named",
    [
        ("run.name=/", "'run.name'"),
        ("run.name=.", "'run.name'"),
        ("run.name=..", "'run.name'"),
        ("run.name=a/b", "'run.name'"),
        ("train.cpu_threads=100000", "'train.cpu_threads'"),
    ],
)
def test_values_refused_by_the_config(tmp_path, capsys, override, named):
    assert named in _one_line(capsys, ["train", TINY, f"run.root={tmp_path}", override])
    assert list(tmp_path.iterdir()) == []


def test_a_run_root_that_is_a_file_is_refused(tmp_path, capsys):
    err = _one_line(capsys, ["train", TINY, *FAST, "run.root=/dev/null"])
    assert "'run.root' (/dev/null) is not a folder" in err


def test_a_network_too_wide_for_memory_is_named_before_allocation(tmp_path, capsys):
    args = ["train", TINY, *FAST, f"run.root={tmp_path}", "model.options.base_channels=65536"]
    err = _one_line(capsys, args)
    assert "model.options" in err and "'base_channels': 65536" in err and "GiB is free" in err
    assert list(tmp_path.iterdir()) == []


def test_an_allocation_failure_in_training_names_the_keys(tmp_path, capsys, monkeypatch):
    def step(*args, **kwargs):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 1099511627776 bytes. Error code 12"
        )

    monkeypatch.setattr(loop, "train_step", step)
    err = _one_line(capsys, ["train", TINY, *FAST, f"run.root={tmp_path}"])
    assert "out of memory" in err and "data.image_size" in err and "train.batch_size" in err


def test_sample_out_that_cannot_be_written_is_one_line(run, capsys):
    err = _one_line(capsys, ["sample", str(run), "--num", "2", "--out", "/proc/x.png"])
    assert "cannot write /proc/x.png" in err


def test_eval_checks_the_inception_file_before_any_long_work(run, tmp_path, capsys, monkeypatch):
    def long_work(*args, **kwargs):
        raise AssertionError("sampling started before --inception was checked")

    monkeypatch.setattr(eval_command, "load_source", long_work)
    bogus = tmp_path / "inception.pt"
    bogus.write_bytes(b"not a TorchScript archive")
    err = _one_line(capsys, ["eval", str(run), "--inception", str(bogus)])
    assert f"{bogus} are no TorchScript file" in err
