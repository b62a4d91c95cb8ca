"""bench/throughput.py runs end to end on CPU in quick mode (a smoke test, not a timing test):
both libraries train and sample the same small UNet, and the table and JSON come out."""

import json

import pytest


@pytest.fixture(scope="module")
def throughput(bench_script):
    return bench_script("throughput")


QUICK = ["--device", "cpu", "--quick", "--steps", "1", "--warmup", "1", "--repeats", "1"]
SMALL = ["--batches", "2", "--sample-batches", "1", "--sample-steps", "2"]


def test_quick_run_measures_both_libraries(throughput, tmp_path, capsys):
    pytest.importorskip("diffusers")
    out = tmp_path / "rows.json"
    rows = throughput.main([*QUICK, *SMALL, "--json", str(out)])
    assert [(r.kind, r.setting) for r in rows] == [
        ("train", "diffusers:eager"),
        ("train", "difflab:default"),
        ("sample", "diffusers:eager"),
        ("sample", "difflab:default"),
    ]
    assert all(r.error is None and r.images_per_s > 0 for r in rows)
    # The same network: the same FLOPs per image, counted once per library.
    assert rows[0].gflop_per_image == rows[1].gflop_per_image > 0
    assert rows[2].gflop_per_image == rows[3].gflop_per_image > 0
    assert all(r.ratio is not None and r.mfu is None for r in rows)  # no MFU on CPU
    assert json.loads(out.read_text())[1]["setting"] == "difflab:default"
    assert "| train | difflab:default | 2 |" in capsys.readouterr().out


def test_same_parameters_as_diffusers_in_quick_and_full_shapes(throughput):
    pytest.importorskip("diffusers")
    import torch

    for shape in (throughput.QUICK, throughput.FULL):
        with torch.device("meta"):
            counts = [
                sum(p.numel() for p in throughput.make_network(library, shape).parameters())
                for library in ("difflab", "diffusers")
            ]
        assert counts[0] == counts[1]


def test_a_failing_setting_is_reported_not_raised(throughput, capsys):
    rows = throughput.main([*QUICK, *SMALL, "--part", "train", "--modes", "difflab:eager",
                            "--device", "meta"])  # fmt: skip
    assert rows[0].error is not None
    assert "failed:" in capsys.readouterr().out


def test_unknown_setting_is_refused(throughput):
    with pytest.raises(SystemExit, match="unknown setting"):
        throughput.main([*QUICK, "--modes", "difflab:fast"])
