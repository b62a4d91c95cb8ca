"""Checkpoints, teachers and classifiers are written with the mode the umask gives a new file,
not safetensors' owner-only 0o600."""

import os
import stat

import pytest
import torch

from difflab.distillation.teachers import save_teacher
from difflab.evaluation.classifier import Classifier, ClassifierConfig, save_classifier
from difflab.runs.checkpoint import save_checkpoint


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def _modes(folder):
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


def test_written_files_follow_the_umask(tmp_path, umask):
    weights = {"w": torch.ones(3)}
    save_checkpoint(tmp_path / "checkpoints", 1, model=weights, ema=weights, state={}, keep=2)
    save_teacher(tmp_path, 0, weights)
    config = ClassifierConfig(dataset="digits", in_channels=1, image_size=8, num_classes=2)
    save_classifier(Classifier(config), tmp_path / "classifier")
    modes = _modes(tmp_path)
    for name in ["model.safetensors", "ema.safetensors", "round-1.safetensors"]:
        assert modes[name] == 0o666 & ~umask, name
    assert modes["classifier.safetensors"] == 0o666 & ~umask
    assert set(modes.values()) == {0o666 & ~umask}  # every file, not only the weights
