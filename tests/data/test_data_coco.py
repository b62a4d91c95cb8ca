"""COCO Captions read one item at a time: resize + center crop, a seeded caption per epoch,
streamed batches whose order is a function of the micro-batch index (so resume is exact),
and unreadable images replaced and counted against data.max_bad_fraction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from difflab.core.errors import ConfigError, DataError
from difflab.data.coco import CocoCaptions, decode_square, read_captions
from difflab.training.stream import StreamingData
from integrations.tiny_coco import caption, image_pixels, write_tiny_coco


@pytest.fixture
def coco(tmp_path):
    return write_tiny_coco(tmp_path / "coco", count=6)


def stream(dataset, **kwargs):
    defaults = dict(batch_size=2, seed=0, num_workers=0, max_bad_fraction=0.2)
    return StreamingData(dataset, **{**defaults, **kwargs})


def test_captions_are_grouped_per_image_in_id_order(coco):
    entries = read_captions(coco, "train")
    assert [e.file.name for e in entries] == [f"{i:012d}.jpg" for i in range(1, 7)]
    assert entries[2].captions == tuple(caption(3, k) for k in range(5))


def test_missing_annotation_file_is_named(coco):
    with pytest.raises(DataError, match="captions_val2017.json"):
        CocoCaptions(coco, split="val", image_size=8, seed=0)


def test_image_is_resized_on_its_shorter_side_and_center_cropped(tmp_path):
    from PIL import Image

    pixels = np.zeros((10, 30, 3), np.uint8)
    pixels[:, 10:20] = 200  # the middle third of a 10 x 30 image
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    out = decode_square(tmp_path / "wide.png", 10)
    assert out.shape == (10, 10, 3)
    assert (out == 200).all()


def test_item_is_a_square_uint8_image_and_one_of_its_captions(coco):
    data = CocoCaptions(coco, split="train", image_size=16, seed=0)
    item = data[(0, 3)]
    assert item.image.shape == (3, 16, 16) and item.image.dtype == torch.uint8
    assert item.caption in data.entries[3].captions
    colour = image_pixels(4, (16, 16))[8, 0]  # left column after the crop is near the left edge
    assert np.abs(item.image[:, 8, 0].numpy().astype(int) - colour).max() < 40


def test_caption_choice_is_seeded_per_epoch(coco):
    data = CocoCaptions(coco, split="train", image_size=8, seed=0)
    other = CocoCaptions(coco, split="train", image_size=8, seed=1)
    by_epoch = [[data.caption_index(e, i) for i in range(6)] for e in range(4)]
    assert by_epoch == [[data.caption_index(e, i) for i in range(6)] for e in range(4)]
    assert len({tuple(c) for c in by_epoch}) > 1
    assert by_epoch != [[other.caption_index(e, i) for i in range(6)] for e in range(4)]


def test_stream_is_a_function_of_the_micro_batch_index(coco):
    data = CocoCaptions(coco, split="train", image_size=8, seed=0)
    s = stream(data)
    run = [s.read(m) for m in range(5)]  # crosses into epoch 1 (3 batches per epoch)
    resumed = stream(data)
    for m in (3, 4):
        batch = resumed.read(m)
        assert torch.equal(batch.images, run[m].images) and batch.captions == run[m].captions
    epoch0 = torch.cat([s.indices(m) for m in range(3)])
    assert sorted(epoch0.tolist()) == list(range(6))


def test_workers_read_the_same_batches(coco):
    data = CocoCaptions(coco, split="train", image_size=8, seed=0)
    here, workers = stream(data), stream(data, num_workers=1)
    for m in range(3):
        a, b = here.read(m), workers.read(m)
        assert torch.equal(a.images, b.images) and a.captions == b.captions


def test_ranks_read_disjoint_halves_of_each_micro_batch(coco):
    data = CocoCaptions(coco, split="train", image_size=8, seed=0)
    whole = stream(data, batch_size=4).read(0)
    parts = [stream(data, batch_size=4, rank=r, world=2).read(0) for r in (0, 1)]
    assert torch.equal(torch.cat([p.images for p in parts]), whole.images)


def test_unreadable_image_is_replaced_by_the_next_and_counted(coco):
    (coco / "train2017" / "000000000002.jpg").write_bytes(b"")
    data = CocoCaptions(coco, split="train", image_size=8, seed=0)
    item = data[(0, 1)]
    assert item.caption in data.entries[2].captions
    assert item.skipped == [
        (str(coco / "train2017" / "000000000002.jpg"), "cannot decode: empty file")
    ]
    s = stream(data, batch_size=6)
    with pytest.warns(UserWarning, match="000000000002.jpg"):
        s.read(0)
    assert list(s.skipped) == [str(coco / "train2017" / "000000000002.jpg")]


def test_too_many_unreadable_images_is_a_data_error(coco):
    for i in (1, 2):
        (coco / "train2017" / f"00000000000{i}.jpg").unlink()
    data = CocoCaptions(coco, split="train", image_size=8, seed=0)
    with pytest.raises(DataError, match="2 of 6 images are unreadable.*max_bad_fraction=0.2"):
        stream(data, batch_size=6).read(0)


def test_a_batch_that_does_not_split_over_the_ranks_is_refused(coco):
    """3 rows over 2 ranks would train 2 of them (1 per rank) and drop the third silently."""
    data = CocoCaptions(coco, split="train", image_size=8, seed=0)
    with pytest.raises(ConfigError, match=r"'train.batch_size' \(3\) must divide by the world"):
        stream(data, batch_size=3, rank=1, world=2)


def test_a_caption_that_is_not_text_is_a_data_error_naming_the_file(coco):
    import json

    file = coco / "annotations" / "captions_train2017.json"
    data = json.loads(file.read_text())
    data["annotations"][3]["caption"] = None
    file.write_text(json.dumps(data))
    with pytest.raises(DataError, match="captions_train2017.json"):
        CocoCaptions(coco, split="train", image_size=8, seed=0)
