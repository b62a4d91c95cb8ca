"""bench/distill.py runs end to end on CPU in quick mode (a smoke test: a 2-step teacher and
2 steps a round, so the numbers mean nothing): the distill stages chain, and the table comes
out."""

import pytest
import yaml


@pytest.fixture(scope="module")
def bench_distill(bench_script):
    return bench_script("distill")


def test_quick_run_chains_the_stages_and_prints_the_table(bench_distill, tmp_path, capsys):
    rows = bench_distill.main(["--quick", "--cache", str(tmp_path)])  # sets 1 thread, as conftest
    out = capsys.readouterr().out
    assert "| steps | teacher FID | teacher accuracy | student FID | student accuracy |" in out
    assert [row.split("|")[1].strip() for row in rows] == ["4", "2"]
    assert all(row in out for row in rows)
    runs = tmp_path / "runs"
    to4, to2 = (runs / f"digits-distilled-8-k2-to{n}" for n in (4, 2))
    assert yaml.safe_load((to4 / "distill.yaml").read_text())["teacher_run"] == str(runs / "digits")
    assert yaml.safe_load((to2 / "distill.yaml").read_text())["teacher_run"] == str(to4)
    assert yaml.safe_load((to2 / "config.yaml").read_text())["sample"]["steps"] == 2
