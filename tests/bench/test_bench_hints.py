"""bench/hints.py: its table prints the shapes and MNIST groups from their own result files,
MNIST is skipped cleanly without its files, and --quick runs end to end (a smoke test: a few
training steps, so the numbers mean nothing)."""

import json
from pathlib import Path

import pytest
import torch

MNIST = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="module")
def hints(bench_script):
    return bench_script("hints")


def group(steps: int, fidelity: tuple[float, float, float]) -> dict:
    """A result file's content: ControlNet, base and real rows of these fidelities."""
    rows = {
        name: {"hint_metric": "edge_f1", "hint_fidelity": f, "accuracy": 0.5}
        for name, f in zip(("controlnet", "base", "real"), fidelity, strict=True)
    }
    return {"hint": "canny", "steps": steps, "num": 10, "rows": rows}


def test_table_prints_each_datasets_groups_from_its_own_files(hints, tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "canny.json").write_text(json.dumps(group(7, (0.8, 0.2, 1.0))))
    (tmp_path / "results" / "mnist-canny.json").write_text(json.dumps(group(9, (0.4, 0.3, 0.7))))
    lines = hints.table(tmp_path)
    assert lines[0].startswith("| data | hint | metric |")
    accuracy = "0.500 / 0.500 / 0.500"
    assert lines[2:] == [
        f"| shapes | canny | edge_f1 | 7 | 10 | 0.800 | 0.200 | 1.000 | 75% | {accuracy} |",
        f"| mnist | canny | edge_f1 | 9 | 10 | 0.400 | 0.300 | 0.700 | 25% | {accuracy} |",
    ]


def test_mnist_without_its_files_is_skipped(hints, tmp_path, capsys):
    args = ["--dataset", "mnist", "--mnist-root", str(tmp_path / "none"), "--quick"]
    hints.main([*args, "--folder", str(tmp_path), "--prepare", "--hint", "hough"])
    assert "(--mnist-root): skipped" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists() and not (tmp_path / "results").exists()


def test_a_hint_the_dataset_does_not_have_is_refused(hints, capsys):
    with pytest.raises(SystemExit):
        hints.parse_args(["--dataset", "mnist", "--hint", "depth"])
    assert "--dataset mnist has ['canny', 'hough', 'scribble']" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(("dataset", "hint"), [("shapes", "canny"), ("mnist", "hough")])
def test_quick_run_scores_a_group(hints, dataset, hint, tmp_path, capsys):
    if dataset == "mnist" and not hints.has_mnist(MNIST):
        pytest.skip(f"no MNIST in {MNIST}")
    threads = torch.get_num_threads()
    try:
        hints.main(["--quick", "--dataset", dataset, "--folder", str(tmp_path), "--prepare",
                    "--hint", hint])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    result = json.loads(hints.result_path(tmp_path, dataset, hint).read_text())
    assert result["steps"] == 2 and result["num"] == 6
    assert set(result["rows"]) == {"controlnet", "base", "real"}
    assert result["rows"]["real"]["hint_fidelity"] > 0.9  # a real image against its own hint
    base = hints.SUITES[dataset].base_name
    assert (tmp_path / "runs" / f"{base}-2-{hint}-2" / "model.json").is_file()
    assert f"| {dataset} | {hint} | edge_f1 | 2 | 6 |" in capsys.readouterr().out
