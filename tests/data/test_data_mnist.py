import gzip

import numpy as np
import pytest
import torch
from idx_files import idx_bytes, serve, write_fake_mnist

from difflab.core.errors import DataError
from difflab.data import load_dataset, mnist


def test_real_mnist_counts_labels_and_mean(shared_data):
    train = load_dataset("mnist", root=shared_data / "mnist", split="train")
    test = load_dataset("mnist", root=shared_data / "mnist", split="test")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.long
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert train.images.float().mean().item() == pytest.approx(0.1307 * 255, abs=0.05)
    assert torch.bincount(train.labels).tolist()[:2] == [5923, 6742]


def test_raw_and_gzipped_files_load_the_same(tmp_path):
    write_fake_mnist(tmp_path / "gz", n=12)
    raw = tmp_path / "raw"
    raw.mkdir()
    for path in (tmp_path / "gz").iterdir():
        (raw / path.stem).write_bytes(gzip.decompress(path.read_bytes()))
    a = load_dataset("mnist", root=tmp_path / "gz")
    b = load_dataset("mnist", root=raw)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.images[:, 0, 3, 5].tolist() == list(range(12))
    assert a.labels.tolist() == [i % 10 for i in range(12)]


IMAGES = np.zeros((2, 28, 28), np.uint8)


@pytest.mark.parametrize(
    "content, message",
    [
        (
            idx_bytes(np.zeros((2, 28, 28), np.uint8), magic=2049),
            "magic number 2049, expected 2051",
        ),
        (idx_bytes(IMAGES)[:-5], "file holds 1563"),
        (b"\x00\x00", "too short"),
        (idx_bytes(np.zeros((2, 27, 28), np.uint8)), "expected 28x28"),
    ],
)
def test_bad_idx_file_is_data_error_naming_it(tmp_path, content, message):
    write_fake_mnist(tmp_path, n=2)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(content))
    with pytest.raises(DataError, match=message) as info:
        load_dataset("mnist", root=tmp_path)
    assert "train-images-idx3-ubyte" in str(info.value)


def test_not_gzip_is_data_error(tmp_path):
    write_fake_mnist(tmp_path, n=2)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz"):
        load_dataset("mnist", root=tmp_path)


def test_label_count_mismatch(tmp_path):
    write_fake_mnist(tmp_path, n=3)
    labels = idx_bytes(np.zeros(2, np.uint8))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    with pytest.raises(DataError, match="2 labels .* for 3 images"):
        load_dataset("mnist", root=tmp_path)


def test_missing_folder_and_file(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path / 'nope'}.*data.root"):
        load_dataset("mnist", root=tmp_path / "nope")
    with pytest.raises(DataError, match="data.root"):
        load_dataset("mnist")
    write_fake_mnist(tmp_path, n=2)
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz.*missing"):
        load_dataset("mnist", root=tmp_path, split="test")


def test_download_from_mirrors(tmp_path, monkeypatch):
    served = tmp_path / "server"
    md5 = write_fake_mnist(served, n=5, prefix="t10k")
    for name, digest in md5.items():
        monkeypatch.setitem(mnist.MD5, name, digest)
    dest = tmp_path / "new" / "mnist"
    with serve(served) as url:
        dead = url + "missing/"  # answers 404: the next mirror is tried
        ds = load_dataset("mnist", root=dest, split="test", download=True, mirrors=[dead, url])
    assert ds.labels.tolist() == [0, 1, 2, 3, 4]
    assert sorted(p.name for p in dest.iterdir()) == sorted(md5)


def test_download_with_wrong_checksum_fails_and_leaves_no_file(tmp_path):
    served = tmp_path / "server"
    write_fake_mnist(served, n=5, prefix="t10k")  # not the official files: md5 differs
    dest = tmp_path / "mnist"
    with serve(served) as url, pytest.raises(DataError) as info:
        load_dataset("mnist", root=dest, split="test", download=True, mirrors=[url])
    official = mnist.MD5["t10k-images-idx3-ubyte.gz"]
    assert f"t10k-images-idx3-ubyte.gz: expected md5 {official}, got " in str(info.value)
    assert list(dest.iterdir()) == []
