import io
import logging
import os
import tarfile
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from difflab.core.errors import DataError
from difflab.data import image_folder, load_dataset


def _png(path, value, size=(6, 4), mode="RGB"):
    """A constant image of `value` ((W, H) = size), saved losslessly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    color = value if mode == "L" else (value, value // 2, 255 - value)
    Image.new(mode, size, color).save(path)


def _jpeg_bytes():
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _folder(root, per_class=4, classes=("cat", "ant", "dog")):
    for c, name in enumerate(classes):
        for i in range(per_class):
            _png(root / name / f"{i}.png", value=40 * c + i)
    return root


def test_loads_classes_sorted_with_exact_pixels(tmp_path):
    root = _folder(tmp_path / "pets" / "train")
    (root / "ant" / "notes.txt").write_text("not an image")
    ds = load_dataset("image-folder", root=tmp_path / "pets")
    assert ds.class_names == ["ant", "cat", "dog"] and ds.num_classes == 3
    assert (ds.name, ds.split, ds.skipped) == ("pets", "train", [])
    assert ds.images.shape == (12, 3, 4, 6) and ds.images.dtype == torch.uint8
    assert ds.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    cat1 = ds.images[5]  # class "cat" (index 0 in the listing order) image 1: value 1
    assert cat1[:, 0, 0].tolist() == [1, 0, 254] and (cat1 == cat1[:, :1, :1]).all()


def test_corrupt_jpeg_and_empty_png_are_skipped_and_named(tmp_path, caplog):
    root = _folder(tmp_path, per_class=100, classes=("a", "b"))
    corrupt = root / "a" / "corrupt.jpg"
    corrupt.write_bytes(_jpeg_bytes()[:200])  # truncated
    empty = root / "b" / "empty.png"
    empty.touch()
    with pytest.warns(UserWarning, match="skipped 2 of 202"), caplog.at_level(logging.INFO):
        ds = load_dataset("image-folder", root=root)
    assert len(ds) == 200 and torch.bincount(ds.labels).tolist() == [100, 100]
    assert [p for p, _ in ds.skipped] == [str(corrupt), str(empty)]
    assert ds.skipped[1][1] == "empty file"
    assert str(corrupt) in caplog.text and str(empty) in caplog.text


def test_too_many_bad_files_is_data_error(tmp_path):
    root = _folder(tmp_path, per_class=3, classes=("a",))
    (root / "a" / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match=r"1 of 4 images .*/a/bad.png"):
        load_dataset("image-folder", root=root)
    with pytest.warns(UserWarning, match="bad.png"):
        assert len(load_dataset("image-folder", root=root, max_bad_fraction=0.25)) == 3


def test_size_mismatch_names_file_unless_resized(tmp_path):
    root = _folder(tmp_path, per_class=2, classes=("a",))
    _png(root / "a" / "z_big.png", value=9, size=(12, 8))
    with pytest.raises(DataError, match="z_big.png: image is 8x12.*expected 4x6.*data.image_size"):
        load_dataset("image-folder", root=root)
    ds = load_dataset("image-folder", root=root, image_size=(2, 3))
    assert ds.images.shape == (3, 3, 2, 3)
    assert ds.images[2, :, 0, 0].tolist() == [9, 4, 246]  # a constant image stays constant


def test_grey_images_keep_one_channel_unless_mixed(tmp_path):
    root = tmp_path / "grey"
    _png(root / "a" / "0.png", value=7, mode="L")
    _png(root / "b" / "0.png", value=9, mode="L")
    assert load_dataset("image-folder", root=root).images[:, :, 0, 0].tolist() == [[7], [9]]
    _png(root / "b" / "1.png", value=200)
    with pytest.warns(UserWarning, match=r"1 colour and 2 grey .*colour ones: .*b/1\.png"):
        mixed = load_dataset("image-folder", root=root).images[:, :, 0, 0]
    assert mixed.tolist() == [[7, 7, 7], [9, 9, 9], [200, 100, 55]]


def test_sixteen_bit_grey_is_scaled_to_8_bits_and_keeps_one_channel(tmp_path):
    k = np.arange(256, dtype=np.int64).reshape(16, 16)
    wide = np.stack([k * 257, k * 257 + 128, k * 257 + 129]).clip(0, 65535)  # round(x / 257)
    for i, plane in enumerate(wide):
        path = tmp_path / "a" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(plane.astype(np.uint16)).save(path)  # a 16-bit grey PNG
    _png(tmp_path / "b" / "0.png", value=7, size=(16, 16), mode="L")
    ds = load_dataset("image-folder", root=tmp_path)
    assert ds.images.shape == (4, 1, 16, 16)
    assert ds.images[0, 0].tolist() == ds.images[1, 0].tolist() == k.tolist()
    assert ds.images[2, 0].tolist() == (k + 1).clip(0, 255).tolist()


def test_fifo_and_link_to_a_device_are_skipped_by_name(tmp_path):
    root = _folder(tmp_path, per_class=4, classes=("a",))
    fifo, device = root / "a" / "pipe.png", root / "a" / "null.png"
    os.mkfifo(fifo)
    device.symlink_to("/dev/null")  # /dev/zero is refused the same way, without reading it
    # A writer that opens and closes the FIFO, so reading it (the bug) ends instead of hanging.
    writer = threading.Thread(target=lambda: os.close(os.open(fifo, os.O_WRONLY)), daemon=True)
    writer.start()
    try:
        with pytest.warns(UserWarning, match="skipped 2 of 6"):
            ds = load_dataset("image-folder", root=root, max_bad_fraction=0.5)
    finally:
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # lets the writer finish
        writer.join()
    assert len(ds) == 4
    assert sorted(ds.skipped) == [
        (str(device), "not a regular file"),
        (str(fifo), "not a regular file"),
    ]


def test_layout_errors(tmp_path):
    _folder(tmp_path / "flat")
    with pytest.raises(DataError, match="no train/test folders"):
        load_dataset("image-folder", root=tmp_path / "flat", split="test")
    _folder(tmp_path / "split" / "train")
    with pytest.raises(DataError, match="no 'test' folder"):
        load_dataset("image-folder", root=tmp_path / "split", split="test")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no images"):
        load_dataset("image-folder", root=tmp_path / "empty")
    with pytest.raises(DataError, match="missing.*data.root"):
        load_dataset("image-folder", root=tmp_path / "missing")


def test_cache_is_reused_and_invalidated(tmp_path, monkeypatch):
    root = _folder(tmp_path / "data")
    cache = tmp_path / "cache"
    first = load_dataset("image-folder", root=root, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 1

    def fail(path, size):
        raise AssertionError("decoded although cached")

    with monkeypatch.context() as m:
        m.setattr(image_folder, "_decode", fail)
        again = load_dataset("image-folder", root=root, cache_dir=cache)
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
    _png(root / "ant" / "0.png", value=123, size=(6, 4))  # new content, new size/mtime
    changed = load_dataset("image-folder", root=root, cache_dir=cache)
    assert changed.images[0, 0, 0, 0] == 123 and len(list(cache.glob("*.npz"))) == 2


def test_cifar10_subset_from_shared_tar(shared_data, tmp_path):
    per_class = 30
    with tarfile.open(shared_data / "cifar10-jpg.tar.gz") as tar:
        for member in tar:
            if member.name.startswith("cifar10/train"):
                break  # the test split comes first in the archive
            if member.isfile() and int(member.name[-8:-4]) < per_class:
                tar.extract(member, tmp_path, filter="data")
    ds = load_dataset("image-folder", root=tmp_path / "cifar10", split="test", num_workers=2)
    assert ds.num_classes == 10 and ds.class_names[:3] == ["airplane", "automobile", "bird"]
    assert ds.images.shape == (10 * per_class, 3, 32, 32) and ds.name == "cifar10"
    assert torch.bincount(ds.labels).tolist() == [per_class] * 10
    assert 60 < ds.images.float().mean() < 180
    first = tmp_path / "cifar10" / "test" / "airplane" / "0000.jpg"
    assert np.array_equal(ds.images[0].permute(1, 2, 0).numpy(), np.asarray(Image.open(first)))
