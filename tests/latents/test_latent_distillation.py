"""Progressive distillation of a latent run: the student's codec is the one the teacher's
model.json records, wherever the teacher was trained from."""

import json

from difflab.distillation import DistillConfig, distill
from difflab.runs.load import MODEL_INFO, load_run
from difflab.sampling.generation import generate
from difflab.training.loop import train

from .conftest import latent_config


def test_distilling_a_latent_run_uses_its_recorded_codec(tmp_path, vae_folder, monkeypatch):
    """model.latent.vae given relative to where the teacher trained; distilled from elsewhere."""
    monkeypatch.chdir(vae_folder.parent)
    items = ("train.steps=1", "model.latent.scaling_factor=0.7")
    teacher = train(latent_config(tmp_path, vae_folder.name, *items), tensorboard=False)
    monkeypatch.chdir(tmp_path)
    d = DistillConfig(teacher_steps=2, target_steps=1, steps_per_round=1, batch_size=8)
    run = distill(teacher, d, tensorboard=False)
    recorded = json.loads((teacher / MODEL_INFO).read_text())["latent"]
    assert recorded["vae"] == str(vae_folder.resolve()) and recorded["scaling_factor"] == 0.7
    assert json.loads((run / MODEL_INFO).read_text())["latent"] == recorded
    images, _ = generate(load_run(run), num=2)
    assert images.shape == (2, 1, 8, 8)
