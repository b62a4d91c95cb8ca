"""bench/controlnet.py runs end to end on CPU in quick mode (a smoke test: a few training
steps, so the numbers mean nothing), and its pieces are right."""

import pytest
import torch


@pytest.fixture(scope="module")
def controlnet(bench_script):
    return bench_script("controlnet")


def test_quick_run_prints_the_table(controlnet, tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        rows = controlnet.main(["--quick", "--folder", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "| samples | hint MSE | ± s.e. | accuracy | seconds |" in out
    assert [r.name for r in rows] == [
        "base run (ignores the hint)",
        "ControlNet",
        "ControlNet at scale 0",
        "random pairing (a test digit of the same label)",
    ]
    assert all(f"| {r.name} | {r.mse:.4f} |" in out for r in rows)
    # At scale 0 the ControlNet adds nothing: the frozen base's samples, pixel for pixel.
    assert rows[2].mse == rows[0].mse
    assert "largest pixel difference 0 (of 255)" in out
    assert (tmp_path / "runs" / "digits-4-controlnet-blur4-4-lr0.001" / "model.json").is_file()


def test_partner_is_another_image_of_the_same_label(controlnet):
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 2, 2, 1, 0])
    partner = controlnet.same_label_partner(labels, torch.Generator().manual_seed(3))
    assert torch.equal(labels[partner], labels)
    assert (partner != torch.arange(len(labels))).all()
