"""A full disk ends every write of a run folder in one line naming the file and the free
space, leaves the previous file (checkpoint, report, config) intact and no temporary behind.
The writers raise what the real libraries raise on ENOSPC: OSError, safetensors'
SafetensorError, torch.save's RuntimeError."""

import errno
import io
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import SafetensorError

from difflab.cli.main import main
from difflab.core.errors import CheckpointError, RunFileError
from difflab.runs import checkpoint
from difflab.runs.checkpoint import load_latest_checkpoint, save_checkpoint
from difflab.runs.metrics import MetricsLog
from difflab.runs.report import write_report

TINY = str(Path(__file__).parents[1] / "training" / "tiny.yaml")
ENOSPC = OSError(errno.ENOSPC, "No space left on device")
SAFETENSORS_ENOSPC = SafetensorError(
    'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space '
    'left on device" })'
)
TORCH_ENOSPC = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")


def _full(error: Exception):
    def write(obj, file, *args, **kwargs):
        Path(file).write_bytes(b"\0" * 100)  # half a file, then the disk is full
        raise error

    return write


def _save(folder: Path, step: int) -> Path:
    net = torch.nn.Linear(3, 2)
    return save_checkpoint(
        folder, step, model=net.state_dict(), ema=net.state_dict(), state={}, keep=1
    )


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if "tmp" in p.name]


@pytest.mark.parametrize(
    "target,error",
    [("save_file", ENOSPC), ("save_file", SAFETENSORS_ENOSPC), ("torch.save", TORCH_ENOSPC)],
)
def test_a_full_disk_during_a_checkpoint_is_one_line(tmp_path, monkeypatch, target, error):
    folder = tmp_path / "checkpoints"
    _save(folder, 1)
    if target == "torch.save":
        monkeypatch.setattr(checkpoint.torch, "save", _full(error))
    else:
        monkeypatch.setattr(checkpoint, "save_file", _full(error))
    with pytest.raises(CheckpointError) as caught:
        _save(folder, 2)
    message = str(caught.value)
    assert "\n" not in message
    assert f"cannot write checkpoint {folder / 'step-000002'}" in message
    assert "free there" in message and "step-000001 is intact" in message
    assert sorted(p.name for p in folder.iterdir()) == ["step-000001"]
    assert load_latest_checkpoint(tmp_path).step == 1


def _text_disk_full(monkeypatch, name: str) -> None:
    real = Path.write_text

    def write_text(self, *args, **kwargs):
        if name in self.name:
            real(self, "half")
            raise ENOSPC
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)


def _one_line(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_a_full_disk_at_config_yaml_names_it_and_leaves_no_folder(tmp_path, monkeypatch, capsys):
    _text_disk_full(monkeypatch, "config")
    err = _one_line(capsys, ["train", TINY, f"run.root={tmp_path}"])
    assert f"cannot write {tmp_path / 'tiny' / 'config.yaml'}: No space left" in err
    assert "free there" in err
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_at_a_sample_grid_names_it(tmp_path, monkeypatch, capsys):
    def save(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG")
        raise ENOSPC

    monkeypatch.setattr(Image.Image, "save", save)
    args = ["train", TINY, f"run.root={tmp_path}", "train.val_every=0", "train.batch_size=4"]
    err = _one_line(capsys, args)
    assert f"cannot write {tmp_path / 'tiny' / 'samples'}" in err and "free there" in err
    assert _leftovers(tmp_path) == []


def test_a_full_disk_at_the_report_keeps_the_previous_one(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("run: {name: run}\n")
    write_report(run)
    before = (run / "report.html").read_text()
    _text_disk_full(monkeypatch, "report")
    with pytest.raises(RunFileError, match=f"cannot write {run / 'report.html'}: No space"):
        write_report(run)
    assert (run / "report.html").read_text() == before
    assert _leftovers(run) == []


def test_a_full_disk_at_the_metrics_names_the_file(tmp_path):
    class FullFile(io.StringIO):
        def flush(self):
            raise ENOSPC

    log = MetricsLog(tmp_path, tensorboard=False)
    log._file.close()
    log._file = FullFile()
    with pytest.raises(RunFileError, match="metrics.jsonl: No space left on device"):
        log.write({"step": 1, "loss": 0.5})
    log.close()
