"""bench/unclip.py runs end to end on CPU in quick mode (a smoke test on digits: 2 steps a
stage, so the numbers mean nothing), its ceiling run matches the decoder's budget, and the
captions it asks for are the held-out ones."""

import json

import pytest
import torch
import yaml

from difflab.data import load_dataset
from difflab.data.captions import captions_for


@pytest.fixture(scope="module")
def unclip(bench_script):
    return bench_script("unclip")


@pytest.mark.slow
def test_quick_run_prints_the_table_and_keeps_the_result(unclip, tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        result = unclip.main(["--quick", "--folder", str(tmp_path), "--cache-dir", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert all(f"| {title} | 6 |" in out for title in unclip.ROWS.values())
    assert "held-out-template retrieval" in out
    assert json.loads((tmp_path / "results" / "digits-6.json").read_text()) == result
    assert set(result["rows"]) == set(unclip.ROWS)
    assert {run["step"] for run in result["runs"].values()} == {2}
    decoder, labelled = (
        yaml.safe_load((tmp_path / "runs" / f"{k}-digits-2" / "config.yaml").read_text())
        for k in ("decoder", "class")
    )
    assert labelled["model"]["class_conditional"] and not decoder["model"]["class_conditional"]
    assert decoder["model"]["embedding"]["image_encoder"] == result["lit"]["folder"]
    assert labelled["model"]["embedding"]["image_encoder"] is None
    for section in ("train", "data"):  # the ceiling's budget is the decoder's
        assert labelled[section] == decoder[section]
    assert labelled["model"]["options"] == decoder["model"]["options"]


def test_captions_are_held_out_ones_of_cycled_classes(unclip):
    test = load_dataset("digits", split="test")
    prompts, labels = unclip.held_out_captions(test, 25)
    assert labels.tolist() == [i % 10 for i in range(25)]
    captions = captions_for(test.class_names)
    for prompt, label in zip(prompts, labels.tolist(), strict=True):
        assert prompt in captions.class_captions(label, "eval")
    assert prompts[0] != prompts[10] != prompts[20]  # a class's captions are cycled
