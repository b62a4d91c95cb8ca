"""Sample .npz files: round trip and one DataError per kind of malformed file."""

import numpy as np
import pytest
import torch

from difflab.core.errors import DataError
from difflab.evaluation import load_samples_npz, save_samples_npz


def test_round_trip_keeps_images_and_labels(tmp_path):
    images = torch.randint(0, 256, (4, 3, 5, 6), dtype=torch.uint8)
    labels = torch.tensor([0, 3, 1, 2])
    save_samples_npz(tmp_path / "s.npz", images, labels)
    with np.load(tmp_path / "s.npz") as data:
        assert data["arr_0"].shape == (4, 5, 6, 3)  # [N, H, W, C] on disk
    loaded, loaded_labels = load_samples_npz(tmp_path / "s.npz")
    assert torch.equal(loaded, images) and torch.equal(loaded_labels, labels)
    save_samples_npz(tmp_path / "u.npz", images[:, :1])
    loaded, loaded_labels = load_samples_npz(tmp_path / "u.npz")
    assert torch.equal(loaded, images[:, :1]) and loaded_labels is None


GOOD = np.zeros((3, 4, 4, 1), np.uint8)


@pytest.mark.parametrize(
    ("arrays", "problem"),
    [
        ({"images": GOOD}, "no arr_0"),
        ({"arr_0": GOOD.astype(np.float32)}, "uint8"),
        ({"arr_0": GOOD[..., 0]}, r"\[N, H, W, C\]"),
        ({"arr_0": np.zeros((3, 4, 4, 2), np.uint8)}, "C 1 or 3"),
        ({"arr_0": GOOD, "arr_1": np.arange(2)}, "one integer label per image"),
        ({"arr_0": GOOD, "arr_1": np.zeros(3, np.float32)}, "one integer label per image"),
    ],
)
def test_malformed_files_name_the_file_and_problem(tmp_path, arrays, problem):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=problem) as err:
        load_samples_npz(path)
    assert str(path) in str(err.value)


def test_not_a_zip_and_missing_files(tmp_path):
    path = tmp_path / "samples.npz"
    with pytest.raises(DataError, match="not found"):
        load_samples_npz(path)
    np.save(tmp_path / "plain.npy", GOOD)
    (tmp_path / "plain.npy").rename(path)
    with pytest.raises(DataError, match="not an .npz"):
        load_samples_npz(path)
    path.write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(DataError, match="samples.npz"):
        load_samples_npz(path)
