"""INT8 graphs per group of noise levels: the grid's steps split into contiguous groups whose
bounds route every grid time back to its own group, rows of a mixed batch routed to their
group's graph and returned in order, and `difflab export --precision int8` writing one graph
per group, each calibrated on its own times, in ascending order of time."""

import json
from pathlib import Path

import numpy as np
import pytest

from difflab.cli.main import main
from difflab.core.errors import ConfigError
from difflab.deploy import draw, open_graph, open_network, openvino_core, read_spec
from difflab.deploy.time_groups import step_groups, time_routed

TINY = str(Path(__file__).parents[1] / "training" / "tiny.yaml")
GRID_T = np.linspace(999.0, 0.0, 21) ** 1.3 / 999.0**0.3  # descending, uneven, clean end last


@pytest.mark.parametrize("groups", [1, 2, 3, 4, 7, 20])
def test_step_groups_route_each_grid_time_to_its_own_group(groups):
    runs, bounds = step_groups(GRID_T, groups)
    assert len(runs) == groups and len(bounds) == groups - 1
    assert sorted(np.concatenate(runs).tolist()) == list(range(20))  # each noisy step once
    for k, steps in enumerate(runs):
        assert (np.diff(steps) == 1).all()  # contiguous
        assert (np.searchsorted(bounds, GRID_T[steps], side="right") == k).all()
    assert max(len(r) for r in runs) - min(len(r) for r in runs) <= 1


@pytest.mark.parametrize("groups", [0, 21])
def test_step_groups_out_of_range_is_a_config_error(groups):
    with pytest.raises(ConfigError, match="time groups must be 1..20"):
        step_groups(GRID_T, groups)


def _graph(k, calls):
    def run(feeds):
        calls.append((k, len(feeds["t"])))
        return np.stack([np.full_like(feeds["x"], k), feeds["x"]], axis=1)  # [N, 2, 3]

    return run


def test_rows_go_to_their_time_group_and_come_back_in_order():
    calls = []
    routed = time_routed([_graph(k, calls) for k in range(3)], [100.0, 500.0])
    t = np.array([999.0, 5.0, 100.0, 499.9, 500.0, 0.0], np.float32)
    x = np.arange(6, dtype=np.float32)[:, None].repeat(3, axis=1)
    out = routed({"t": t, "x": x, "labels": np.arange(6)})
    np.testing.assert_array_equal(out[:, 0, 0], [2, 0, 1, 1, 2, 0])  # t >= bound: the upper
    np.testing.assert_array_equal(out[:, 1], x)  # each row's own output, in the feeds' order
    assert sorted(calls) == [(0, 2), (1, 2), (2, 2)]  # one batch per graph
    calls.clear()
    routed({"t": np.full(4, 300.0, np.float32), "x": x[:4]})
    assert calls == [(1, 4)]


def test_bounds_that_do_not_fit_the_graphs_are_a_config_error():
    with pytest.raises(ConfigError, match="3 time-grouped graphs need 2 ascending"):
        time_routed([_graph(k, []) for k in range(3)], [500.0, 100.0])


pytest.importorskip("nncf")
ov = pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def grouped(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    args = ["train.steps=2", "train.lr=0.03", "train.ema_decay=0", "sample.steps=6"]
    assert main(["train", TINY, f"run.root={root}", *args]) == 0
    run = root / "tiny"
    flags = ["--format", "openvino", "--precision", "int8", "--exporter", "torchscript"]
    assert (
        main(["export", str(run), *flags, "--int8-time-groups", "3", "--int8-calibration", "32"])
        == 0
    )
    return run


def _input_range(xml: Path) -> float:
    """The width of the range of the FakeQuantize on the network input x."""
    model = openvino_core().read_model(str(xml))
    for op in model.get_ordered_ops():
        source = op.input_value(0).get_node() if op.get_type_name() == "FakeQuantize" else None
        if source is not None and source.get_friendly_name() == "x":
            low, high = (op.input_value(i).get_node().get_data() for i in (1, 2))
            return float(np.max(high) - np.min(low))
    raise AssertionError(f"{xml}: no quantizer on x")


def test_export_writes_one_int8_graph_per_group_in_ascending_time(grouped):
    spec = read_spec(grouped / "export" / "openvino")
    data = json.loads((spec.folder / "export.json").read_text())
    assert data["graphs"]["network"] == [f"network.t{k}.xml" for k in range(3)]
    runs, bounds = step_groups(spec.grid.network_t, 3)
    assert spec.time_bounds == pytest.approx(bounds)
    with pytest.raises(ConfigError, match="3 time-grouped graphs"):
        spec.path("network")
    # x_t = alpha x0 + sigma eps: the noisier a group's times, the wider its input's range
    widths = [_input_range(p) for p in spec.paths("network")]
    assert widths[0] < widths[1] < widths[2] and widths[0] * 1.3 < widths[2], widths


def test_each_grid_step_runs_the_graph_calibrated_on_it(grouped):
    spec = read_spec(grouped / "export" / "openvino")
    grid = spec.grid
    runs, _ = step_groups(grid.network_t, 3)
    graphs = [open_graph(p, "openvino", precision="int8") for p in spec.paths("network")]

    def by_step(feeds):  # the graph of the group holding the grid step of the feeds' time
        step = np.argmin(np.abs(grid.network_t[:-1] - feeds["t"][0]))
        return graphs[next(k for k, r in enumerate(runs) if step in r)](feeds)

    x_T = np.random.default_rng(0).standard_normal((4, *spec.latent_shape), dtype=np.float32)
    kw = dict(parameterization=spec.data["parameterization"], labels=np.array([1, 4, 1, -1]),
              guidance=2.0)  # fmt: skip
    want = draw(by_step, grid, x_T, **kw)
    np.testing.assert_array_equal(draw(open_network(spec, "openvino"), grid, x_T, **kw), want)
    single = open_graph(spec.paths("network")[0], "openvino", precision="int8")
    assert np.abs(draw(single, grid, x_T, **kw) - want).max() > 1e-3  # the groups differ


def test_difflab_sample_draws_from_a_grouped_export(grouped, tmp_path):
    out = tmp_path / "int8.npz"
    args = ["sample", str(grouped), "-n", "4", "--labels", "1,4", "--backend", "openvino",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert len(np.unique(np.load(out)["arr_0"])) > 10  # images, not a constant
