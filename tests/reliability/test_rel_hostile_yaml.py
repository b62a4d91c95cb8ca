"""A config YAML is bounded before any object is built from it: aliases that expand past
MAX_NODES ("billion laughs"), a self-referencing alias and an oversized file are one line naming
the file, for a recipe file and for a run's config.yaml read by --resume."""

from pathlib import Path

import yaml

from difflab.cli.main import main
from difflab.config.bounded_yaml import MAX_BYTES, MAX_NODES, expanded_nodes, load_bounded


def _laughs(levels: int) -> str:
    """model.options whose aliases expand to 10**levels strings (about 1.1 * 10**levels nodes)."""
    lines = ['l0: &l0 ["ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    body = "\n".join("    " + line for line in lines)
    return f"model:\n  options:\n{body}\n"


def _one_line(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_expanded_nodes_counts_every_alias_reference():
    node = yaml.compose("a: &x [1, 2]\nb: *x\n")
    # the mapping, two keys, and the list [1, 2] (3 nodes) once per reference
    assert expanded_nodes(node, {}) == 1 + 2 + 3 * 2
    assert load_bounded("a: &x [1, 2]\nb: *x\n", "f") == {"a": [1, 2], "b": [1, 2]}


def test_billion_laughs_in_a_config_file_is_refused(tmp_path, capsys):
    assert 2 * 10**4 < MAX_NODES < 10**6  # 4 levels pass; 6 (or the 9 of an attack) do not
    ok = tmp_path / "ok.yaml"
    ok.write_text(_laughs(4))
    assert load_bounded(ok.read_text(), str(ok))["model"]["options"]["l3"][0][0][0] == ["ha"] * 10
    bad = tmp_path / "laughs.yaml"
    bad.write_text(_laughs(6))
    err = _one_line(capsys, ["train", str(bad), "--dry-run"])
    assert f"config file {bad} expands to more than {MAX_NODES} YAML nodes" in err


def test_a_self_referencing_alias_is_refused(tmp_path, capsys):
    bad = tmp_path / "loop.yaml"
    bad.write_text("model:\n  options: &x {a: *x}\n")
    assert "expands to more than" in _one_line(capsys, ["train", str(bad), "--dry-run"])


def test_an_oversized_config_file_is_refused(tmp_path, capsys):
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * (MAX_BYTES // 10 + 1))
    assert f"larger than {MAX_BYTES} bytes" in _one_line(capsys, ["train", str(big), "--dry-run"])


def test_billion_laughs_in_a_run_config_is_refused_on_resume(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(_laughs(6))
    err = _one_line(capsys, ["train", "--resume", str(run)])
    assert str(Path(run) / "config.yaml") in err and "expands to more than" in err
