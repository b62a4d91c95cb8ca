"""report.html: one chart per numeric metric with a point per finite record, the grids and
checkpoints on disk, escaped text, written at each checkpoint."""

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from difflab.config.recipes import load_config
from difflab.runs.checkpoint import MARKER
from difflab.runs.report import REPORT_FILE, write_report
from difflab.runs.svg_chart import HEIGHT, PAD_BOTTOM, PAD_LEFT, PAD_RIGHT, PAD_TOP, WIDTH
from difflab.training import loop
from difflab.training.loop import train

TINY = str(Path(__file__).with_name("tiny.yaml"))
SCRIPT = "</pre><script>alert(1)</script>"


class Page(HTMLParser):
    """The parts of a report a test checks: every tag, charts by series, img srcs, checkpoints,
    captions and the config text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.charts: dict[str, dict] = {}
        self.imgs: list[str] = []
        self.checkpoints: list[str] = []
        self.pre = ""
        self._open: list[str] = []
        self._chart: dict | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag not in ("img", "meta"):  # void elements: no end tag
            self._open.append(a.get("class") or tag)
        if tag == "figure" and a.get("class") == "chart":
            self._chart = self.charts.setdefault(
                a["data-series"], {"points": 0, "caption": "", "text": []}
            )
        if tag == "polyline":
            self._chart["points"] = len(a["points"].split())
        if tag == "circle":
            self._chart["points"] = 1
        if tag == "img":
            self.imgs.append(a["src"])

    def handle_endtag(self, tag):
        if self._open.pop() == "chart":
            self._chart = None

    def handle_data(self, data):
        where = self._open[-1] if self._open else ""
        if where == "pre":
            self.pre += data
        elif where == "checkpoint":
            self.checkpoints.append(data)
        elif self._chart is not None and "figcaption" in self._open:
            self._chart["caption"] += data
        elif self._chart is not None and where == "text":
            self._chart["text"].append(data)


def _page(path: Path) -> Page:
    return Page(path.read_text(encoding="utf-8"))


def _finite_counts(run: Path) -> dict[str, int]:
    """From metrics.jsonl, independently: each numeric key's count of finite values."""
    counts: dict[str, int] = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        for key, value in json.loads(line).items():
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if key not in ("step", "data_skipped") and numeric:
                counts[key] = counts.get(key, 0) + math.isfinite(value)
    return counts


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    return train(load_config(TINY, [f"run.root={root}"]), tensorboard=False)


def test_training_writes_the_report_of_the_run(tiny_run):
    page = _page(tiny_run / REPORT_FILE)
    counts = _finite_counts(tiny_run)
    assert {"loss", "lr", "images_per_s", "val_loss"} <= counts.keys()
    assert {name: c["points"] for name, c in page.charts.items()} == counts
    grids = sorted((tiny_run / "samples").glob("*.png"))
    assert len(grids) == 4  # steps 2 and 4, EMA and raw
    assert [(tiny_run / unquote(src)).resolve() for src in page.imgs] == [
        grids[i].resolve()
        for i in (2, 3, 0, 1)  # newest first, EMA before raw
    ]
    on_disk = [p.name for p in (tiny_run / "checkpoints").iterdir() if (p / MARKER).is_file()]
    assert page.checkpoints == sorted(on_disk) == ["step-000002", "step-000004"]
    assert page.pre == (tiny_run / "config.yaml").read_text()
    assert ">finished</strong>: 4 of 4 steps" in (tiny_run / REPORT_FILE).read_text()


def test_cli_report_elsewhere_links_the_grids(tiny_run, tmp_path, capsys):
    from difflab.cli.main import main

    out = tmp_path / "site" / "r.html"
    assert main(["report", str(tiny_run), "--out", str(out)]) == 0
    page = _page(out)
    assert len(page.imgs) == 4
    assert all((out.parent / unquote(src)).is_file() for src in page.imgs)
    assert not list(out.parent.glob(".*tmp*"))
    assert main(["report", str(tiny_run), "--out", str(out.parent)]) == 2  # a folder
    assert f"cannot write {out.parent}: Is a directory" in capsys.readouterr().err


def test_report_at_a_checkpoint_of_a_stopped_run_escapes_its_text(tmp_path):
    overrides = [f"run.root={tmp_path}", "run.name=<b>x", f"run.wandb_project={SCRIPT}"]
    config = load_config(TINY, [*overrides, "train.sample_every=0", "train.val_every=0"])
    run = train(config, tensorboard=False, stop_at=2)
    text = (run / REPORT_FILE).read_text()
    assert "not finished" in text and "2 of 4 steps in the newest checkpoint" in text
    page = Page(text)
    assert "script" not in page.tags and "b" not in page.tags
    assert "&lt;script&gt;" in text and "difflab run &lt;b&gt;x" in text
    assert page.checkpoints == ["step-000002"]
    assert SCRIPT in page.pre


def test_nonfinite_values_are_skipped_and_counted(tmp_path):
    (tmp_path / "config.yaml").write_text(f"train:\n  steps: 5\nrun:\n  name: '{SCRIPT}'\n")
    records = [
        {"step": 1, "loss": 1.0, "val_split": "<script>"},
        {"step": 2, "loss": float("nan")},
        {"step": 3, "loss": None},
        {"step": 4, "loss": 0.5, "val_loss": 0.25, "eval_fid": float("inf")},
        {"step": 4, "data_skipped": 1, "data_skipped_files": ["<script>.png"]},
        {"step": 5, "loss": float("inf"), "ok": True},
    ]
    lines = [json.dumps(r) for r in records]  # NaN, Infinity as Python's json writes them
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 6, "lo')
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "step-000004-<script>.png").write_bytes(b"")
    page = _page(write_report(tmp_path))
    assert set(page.charts) == {"loss", "val_loss", "eval_fid"}
    assert page.charts["loss"]["points"] == 2
    assert "3 non-finite or empty values skipped" in page.charts["loss"]["caption"]
    assert page.charts["val_loss"]["points"] == 1
    assert page.charts["val_loss"]["text"] == ["0.25", "step 4"]  # one point shows its value
    assert page.charts["eval_fid"]["points"] == 0
    assert page.charts["eval_fid"]["text"] == ["no finite values"]
    assert "script" not in page.tags
    assert page.imgs == ["samples/step-000004-%3Cscript%3E.png"]


def test_a_long_run_draws_each_pixel_columns_extremes_not_every_point(tmp_path):
    """20,000 logged steps: the polyline keeps the first, lowest, highest and last point of
    each pixel column (the same drawn line, its ends and extremes), so the page stays small."""
    n = 20_000
    (tmp_path / "config.yaml").write_text(f"train:\n  steps: {n}\n")
    loss = [1 + (step % 7) / 10 for step in range(1, n + 1)]
    loss[12_345], loss[54] = 9.0, -3.0  # one highest and one lowest value
    lines = [json.dumps({"step": step, "loss": v}) for step, v in enumerate(loss, start=1)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    text = write_report(tmp_path).read_text()
    assert len(text) < 60_000  # each of 20,000 points would take about 14 bytes
    points = re.search(r'<polyline [^>]*points="([^"]*)"', text).group(1).split()
    xy = [tuple(map(float, p.split(","))) for p in points]
    assert len(xy) <= 4 * (WIDTH - PAD_LEFT - PAD_RIGHT + 1)  # four per pixel column
    assert [x for x, _ in xy] == sorted(x for x, _ in xy)
    assert (xy[0][0], xy[-1][0]) == (PAD_LEFT, WIDTH - PAD_RIGHT)
    assert min(y for _, y in xy) == PAD_TOP and max(y for _, y in xy) == HEIGHT - PAD_BOTTOM
    assert "20000 points" in Page(text).charts["loss"]["caption"]


@pytest.mark.parametrize("where", [".", ".."])
def test_a_report_of_a_relative_folder_names_it(tmp_path, monkeypatch, where):
    """`difflab report .` in the run folder (or `..` in its samples): the page names the
    folder, not '' or '..'."""
    run = tmp_path / "run-7"
    (run / "samples").mkdir(parents=True)
    (run / "config.yaml").write_text("train:\n  steps: 2\n")
    monkeypatch.chdir(run if where == "." else run / "samples")
    text = write_report(where).read_text()
    assert "<h1>difflab run run-7</h1>" in text and "Folder <code>run-7</code>" in text
    assert (run / REPORT_FILE).is_file()


def test_a_report_that_cannot_be_written_warns_and_training_goes_on(tmp_path, monkeypatch):
    def fail(run_dir):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(loop, "write_report", fail)
    overrides = [f"run.root={tmp_path}", "train.steps=1", "train.sample_every=0"]
    with pytest.warns(UserWarning, match="cannot write the report .*No space left"):
        run = train(load_config(TINY, [*overrides, "train.val_every=0"]), tensorboard=False)
    assert (run / "checkpoints" / "step-000001" / MARKER).is_file()


def test_a_folder_that_is_not_a_run_is_an_error_naming_it(tmp_path, capsys):
    from difflab.cli.main import main

    assert main(["report", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'nowhere'} is not a difflab run folder" in err


def test_distilled_run_report_counts_every_round(tiny_run):
    from difflab.distillation import DistillConfig, distill, resume_distill

    d = DistillConfig(teacher_steps=8, target_steps=2, steps_per_round=1, batch_size=4)
    run = distill(tiny_run, d, tensorboard=False, stop_at=1)
    assert _page(run / REPORT_FILE).checkpoints == ["step-000001"]
    stopped = (run / REPORT_FILE).read_text()
    assert "not finished" in stopped and "1 of 2 steps in the newest checkpoint" in stopped
    resume_distill(run, tensorboard=False)
    text = (run / REPORT_FILE).read_text()
    assert ">finished</strong>: 2 of 2 steps" in text
    assert Page(text).charts["round_loss"]["points"] == 2
