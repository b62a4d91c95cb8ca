"""What report.html tells about a run, on hand-made run folders: the folder's name, what kind of
run it is, grids scaled up by a whole factor, round-number axis ticks where the values are,
compact flat series, evaluations, distillation rounds, ControlNet hints and SD prompts."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from difflab.runs.report import write_report
from difflab.runs.svg_chart import FLAT_HEIGHT, HEIGHT, PAD_BOTTOM, PAD_TOP

SCRIPT = "<script>alert(1)</script>"


class Page(HTMLParser):
    """Tags, the text of each table row by the row's class (or its table's), img attributes,
    and each chart's svg height and left-anchored (value axis) labels with their y."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.rows: dict[str, list[list[str]]] = {}
        self.items: dict[str, list[str]] = {}
        self.imgs: list[dict[str, str]] = []
        self.h1 = ""
        self.svgs: dict[str, dict] = {}
        self._where: list[tuple[str, str]] = []
        self._svg: dict | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(a)
            return
        self._where.append((tag, a.get("class") or ""))
        if tag == "table":
            self._table = a.get("class") or ""
        if tag == "tr":
            self.rows.setdefault(a.get("class") or self._table, []).append([])
            self._row = self.rows[a.get("class") or self._table][-1]
        if tag == "svg":
            self._svg = {"height": int(a["height"]), "labels": []}
        self._label = tag == "text" and self._svg is not None and a["text-anchor"] == "end"
        if self._label:
            self._svg["labels"].append([float(a["y"]), ""])

    def handle_endtag(self, tag):
        self._where.pop()
        if tag == "svg":
            self._svg = None

    def handle_data(self, data):
        tag, cls = self._where[-1] if self._where else ("", "")
        if tag == "h1":
            self.h1 += data
        elif tag in ("td", "th"):
            self._row.append(data)
        elif tag == "li":
            self.items.setdefault(cls, []).append(data)
        elif tag == "title" and self._svg is not None:
            self.svgs[data] = self._svg
        elif tag == "text" and self._label:
            self._svg["labels"][-1][1] += data


def _run(tmp_path: Path, name: str, config: dict, info: dict | None = None) -> Path:
    run = tmp_path / name
    (run / "samples").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    info = info or {"in_channels": 1, "image_size": 8, "num_classes": 10}
    (run / "model.json").write_text(json.dumps(info))
    return run


def _metrics(run: Path, records: list[dict]) -> None:
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def _page(run: Path) -> Page:
    return Page(write_report(run).read_text())


def _png(path: Path, width: int, height: int) -> None:
    Image.fromarray(np.zeros((height, width), np.uint8)).save(path)


def test_the_title_is_the_folder_and_the_kind_says_what_the_run_is(tmp_path):
    config = {"run": {"name": "digits"}, "model": {"network": "unet-tiny"}, "sample": {}}
    page = _page(_run(tmp_path, "digits-2", config))
    assert page.h1 == "difflab run digits-2"
    assert page.rows["kind"] == [
        ["network", "unet-tiny"],
        ["conditioning", "class labels (10 classes), guidance None"],
        ["space", "pixels, images 1x8x8"],
    ]


def test_grids_are_scaled_by_a_whole_factor_to_about_480_pixels(tmp_path):
    run = _run(tmp_path, "r", {})
    _png(run / "samples" / "step-000002-ema.png", 91, 37)  # a digits grid
    _png(run / "samples" / "step-000002-raw.png", 1030, 520)  # an SD grid: never shrunk
    sizes = {img["alt"]: (int(img["width"]), int(img["height"])) for img in _page(run).imgs}
    assert sizes == {"step 2, ema": (5 * 91, 5 * 37), "step 2, raw": (1030, 520)}


def test_value_ticks_are_round_numbers_placed_where_those_values_are(tmp_path):
    run = _run(tmp_path, "r", {})
    values = [0.9, 0.5, 0.31, 0.0312]
    _metrics(run, [{"step": i + 1, "loss": v, "lr": 1e-3} for i, v in enumerate(values)])
    page = _page(run)
    loss = page.svgs["loss"]
    assert loss["height"] == HEIGHT
    ticks = {float(text): y - 4 for y, text in loss["labels"] if text != "step"}
    assert sorted(ticks) == [0.2, 0.4, 0.6, 0.8]
    lo, hi = min(values), max(values)
    for value, y in ticks.items():  # the chart maps [lo, hi] onto [bottom, top]
        expected = HEIGHT - PAD_BOTTOM - (value - lo) * (HEIGHT - PAD_BOTTOM - PAD_TOP) / (hi - lo)
        assert abs(y - expected) < 0.06
    lr = page.svgs["lr"]
    assert lr["height"] == FLAT_HEIGHT < HEIGHT / 4 and lr["labels"][0][1] == "0.001"


def test_evaluations_are_listed_by_step_and_escaped(tmp_path):
    run = _run(tmp_path, "r", {})
    (run / "eval").mkdir()
    first = {"step": 40, "num_samples": 1000, "fid": 3.25, "kid_mean": -0.0001, "kid_std": None}
    second = {"step": 20, "num_samples": 6, "fid": 41.5, "accuracy": 0.5, "reference": SCRIPT}
    (run / "eval" / "eval-step-000040.json").write_text(json.dumps(first))
    (run / "eval" / "eval-step-000020.json").write_text(json.dumps(second))
    (run / "eval" / "broken.json").write_text("{")
    page = _page(run)
    assert [row[:8] for row in page.rows["eval"]] == [
        ["eval-step-000020.json", "20", "6", "41.5", "-", "-", "0.5", SCRIPT],
        ["eval-step-000040.json", "40", "1000", "3.25", "-0.0001", "-", "-", "-"],
    ]
    assert "script" not in page.tags


def test_a_distilled_run_shows_its_teacher_and_rounds(tmp_path):
    run = _run(tmp_path, "digits-distilled", {})
    settings = {"teacher_run": "runs/digits", "distill": {"teacher_steps": 8, "target_steps": 2}}
    (run / "distill.yaml").write_text(yaml.safe_dump(settings))
    head = [{"round": r, "teacher_steps": 8 // 2 ** (r - 1), "student_steps": 4 // 2 ** (r - 1)}
            for r in (1, 2)]  # fmt: skip
    _metrics(run, [{"step": 0, **head[0]}, {"step": 5, **head[0], "round_loss": 0.125},
                   {"step": 5, **head[1]}])  # fmt: skip
    page = _page(run)
    assert ["distilled", "from runs/digits, 8 to 2 sampling steps"] in page.rows["kind"]
    assert page.rows["round"] == [["1", "0", "8 to 4", "0.125"], ["2", "5", "4 to 2", "running"]]


def test_a_controlnet_run_names_its_base_and_shows_its_hints(tmp_path):
    config = {
        "model": {"network": "unet-tiny", "controlnet": {"base_run": "runs/d", "hint": "blur"}}
    }
    run = _run(tmp_path, "r", config)
    _png(run / "samples" / "hints.png", 91, 37)
    page = _page(run)
    assert ["ControlNet", "on base run runs/d, hint blur (samples/hints.png)"] in page.rows["kind"]
    assert [img["alt"] for img in page.imgs] == ["hints"]


def test_a_stable_diffusion_run_lists_its_prompts_and_latent_space(tmp_path):
    config = {"model": {"network": "sd-unet", "pretrained": "sd"}, "sample": {"guidance": 7.5}}
    config["sample"]["prompts"] = ["a <b>cat</b>", "a dog"]
    info = {"in_channels": 3, "image_size": 16, "num_classes": 0, "latent_shape": [4, 8, 8]}
    info["latent"] = {"vae": "/m/sd"}
    page = _page(_run(tmp_path, "sd", config, info))
    assert page.items["prompt"] == ["a <b>cat</b>", "a dog"] and "b" not in page.tags
    assert page.rows["kind"] == [
        ["network", "sd-unet"],
        ["Stable Diffusion", "fine-tune of sd"],
        ["conditioning", "text (CLIP captions), guidance 7.5"],
        ["space", "latents 4x8x8 of the VAE /m/sd, images 3x16x16"],
    ]


def test_a_grid_that_is_no_image_is_shown_unscaled(tmp_path):
    run = _run(tmp_path, "r", {})
    (run / "samples" / "step-000001-ema.png").write_bytes(b"")
    (img,) = _page(run).imgs
    assert "width" not in img and re.fullmatch(r"samples/step-000001-ema\.png", img["src"])
