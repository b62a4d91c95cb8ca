"""Captioned layouts besides COCO 2017: the OTX folder found from data.root alone, diffusers'
metadata.jsonl with a chosen caption column, WebDataset shards by folder or brace pattern;
malformed input is a one-line DataError or a counted skip; random crops are seeded per epoch;
shards streamed by 2 ranks give each sample once per epoch."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from difflab.core.errors import DataError
from difflab.data.captioned import CaptionedImages, CaptionOptions, decode_square, read_entries
from difflab.data.webdataset import expand_braces
from difflab.training.stream import StreamingData
from integrations.tiny_captioned import (
    add_member,
    write_image_folder,
    write_otx,
    write_shards,
)
from integrations.tiny_coco import caption

TRAIN = CaptionOptions()


def firsts(entries) -> list[str]:
    return [e.captions[0] for e in entries]


def test_otx_folder_is_found_from_its_root(tmp_path):
    dataset = write_otx(tmp_path, count=4)
    entries = read_entries(str(dataset), "coco", TRAIN)
    assert [e.file for e in entries] == [
        dataset / "images" / "train" / f"{i:012d}.jpg" for i in range(1, 5)
    ]
    assert entries[1].captions == tuple(caption(2, k) for k in range(5))


def test_otx_missing_annotation_file_is_named(tmp_path):
    dataset = write_otx(tmp_path, count=2)
    with pytest.raises(DataError, match=r"annotations/val\.json"):
        read_entries(str(dataset), "otx", CaptionOptions(split="val"))


def test_coco_caption_of_the_wrong_type_is_named(tmp_path):
    dataset = write_otx(tmp_path, count=2)
    file = dataset / "annotations" / "train.json"
    data = json.loads(file.read_text())
    data["annotations"][3]["caption"] = 7
    file.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"train\.json.*caption 7 is not a string"):
        read_entries(str(dataset), "coco", TRAIN)


def test_metadata_jsonl_reads_the_chosen_caption_column(tmp_path):
    folder = write_image_folder(tmp_path / "f", count=3, column="caption")
    entries = read_entries(str(folder), "coco", CaptionOptions(caption_column="caption"))
    assert [e.file for e in entries] == [folder / f"{i:03d}.jpg" for i in range(1, 4)]
    assert firsts(entries) == [caption(i, 0) for i in range(1, 4)]
    with pytest.raises(DataError, match=r"metadata\.jsonl line 1: no caption column 'text'"):
        read_entries(str(folder), "metadata-jsonl", TRAIN)


def test_metadata_caption_of_the_wrong_type_names_the_line(tmp_path):
    folder = write_image_folder(tmp_path / "f", count=3)
    lines = (folder / "metadata.jsonl").read_text().splitlines()
    lines[1] = json.dumps({"file_name": "002.jpg", "text": {"a": 1}})
    (folder / "metadata.jsonl").write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"metadata\.jsonl line 2: caption column 'text' must"):
        read_entries(str(folder), "metadata-jsonl", TRAIN)


def test_an_image_listed_but_absent_is_a_counted_skip(tmp_path):
    folder = write_image_folder(tmp_path / "f", count=3)
    (folder / "002.jpg").unlink()
    data = CaptionedImages(read_entries(str(folder), "coco", TRAIN), name="f", image_size=8, seed=0)
    item = data[(0, 1)]
    assert item.caption == caption(3, 0)
    assert [path for path, _ in item.skipped] == [str(folder / "002.jpg")]


def test_braces_expand_ranges_and_lists():
    assert expand_braces("s-{08..10}.tar") == ["s-08.tar", "s-09.tar", "s-10.tar"]
    assert expand_braces("{a,b}/{1..2}") == ["a/1", "a/2", "b/1", "b/2"]


def test_shards_by_folder_and_by_pattern_list_every_sample_in_order(tmp_path):
    root = write_shards(tmp_path / "w", count=8, per_shard=3)
    by_folder = read_entries(str(root), "coco", TRAIN)
    by_pattern = read_entries(str(root / "shard-{000..002}.tar"), "webdataset", TRAIN)
    assert firsts(by_folder) == firsts(by_pattern) == [caption(i, 0) for i in range(1, 9)]
    data = CaptionedImages(by_folder, name="w", image_size=8, seed=0)
    assert data[(0, 5)].image.shape == (3, 8, 8)


def test_a_corrupt_member_is_a_counted_skip_and_a_broken_shard_is_named(tmp_path):
    root = tmp_path / "w"
    root.mkdir()
    import tarfile

    with tarfile.open(root / "a.tar", "w") as tar:
        add_member(tar, "001.jpg", b"not a jpeg")
        add_member(tar, "001.txt", b"first")
        add_member(tar, "002.jpg", write_image_bytes())
        add_member(tar, "002.txt", b"second")
    data = CaptionedImages(read_entries(str(root), "coco", TRAIN), name="w", image_size=8, seed=0)
    item = data[(0, 0)]
    assert item.caption == "second"
    assert [path for path, _ in item.skipped] == [f"{root / 'a.tar'}:001.jpg"]
    (root / "b.tar").write_bytes(b"garbage" * 200)
    with pytest.raises(DataError, match=r"cannot read WebDataset shard .*b\.tar"):
        read_entries(str(root), "webdataset", TRAIN)


def write_image_bytes() -> bytes:
    from integrations.tiny_captioned import jpeg

    return jpeg(2)


def test_two_ranks_see_each_sample_once_per_epoch(tmp_path):
    root = write_shards(tmp_path / "w", count=8, per_shard=3)
    data = CaptionedImages(read_entries(str(root), "coco", TRAIN), name="w", image_size=8, seed=0)
    for epoch in range(2):
        seen = []
        for rank in range(2):
            s = StreamingData(
                data, batch_size=4, seed=0, num_workers=0, max_bad_fraction=0, rank=rank, world=2
            )
            for m in range(epoch * 2, epoch * 2 + 2):
                seen += s.read(m).captions
        assert sorted(seen) == sorted(caption(i, 0) for i in range(1, 9))


def test_random_crop_is_seeded_per_epoch_and_is_a_crop_of_the_resized_image(tmp_path):
    pixels = np.arange(10 * 30 * 3, dtype=np.uint8).reshape(10, 30, 3)
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    full = decode_square(tmp_path / "wide.png", 10, (0.0, 0.0))
    right = decode_square(tmp_path / "wide.png", 10, (1.0, 1.0))
    assert np.array_equal(full, pixels[:, :10]) and np.array_equal(right, pixels[:, 20:])
    from difflab.data.captioned import CaptionEntry

    entries = [CaptionEntry(tmp_path / "wide.png", ("x",))]
    data = CaptionedImages(entries, name="w", image_size=10, seed=0, crop="random")
    corners = [data.corner(epoch, 0) for epoch in range(4)]
    assert len(set(corners)) == 4 and corners == [data.corner(e, 0) for e in range(4)]
    left = round(20 * corners[1][0] - 1e-9)
    assert np.array_equal(data[(1, 0)].image.permute(1, 2, 0).numpy(), pixels[:, left : left + 10])
