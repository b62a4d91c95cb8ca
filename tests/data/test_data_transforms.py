import pytest
import torch

from difflab.core.errors import DataError
from difflab.data import Compose, RandomHorizontalFlip, Resize, ToSymmetric, to_uint8


def _batch(n=6, c=3, h=5, w=7):
    g = torch.Generator().manual_seed(1)
    image = torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)
    return {"image": image, "label": torch.arange(n)}


def _copy(batch):
    return {k: v.clone() for k, v in batch.items()}


def test_to_symmetric_round_trip_is_exact():
    u = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    x = ToSymmetric()({"image": u})["image"]
    assert x.dtype == torch.float32 and x.min() == -1 and x.max() == 1
    assert torch.equal(to_uint8(x), u)


def test_to_uint8_clamps_and_rounds():
    x = torch.tensor([-3.0, -1.0, 0.0, 1.0, 5.0, 2 / 255 - 1 + 0.001])
    assert to_uint8(x).tolist() == [0, 0, 128, 255, 255, 1]


def test_to_symmetric_rejects_float():
    with pytest.raises(DataError, match="uint8"):
        ToSymmetric()({"image": torch.zeros(1, 1, 2, 2)})


def test_flip_p1_is_torch_flip_p0_is_identity():
    batch = _batch()
    batch["hint"] = batch["image"].flip(1)
    flipped = RandomHorizontalFlip(p=1.0)(batch)
    assert torch.equal(flipped["image"], torch.flip(batch["image"], dims=[-1]))
    assert torch.equal(flipped["hint"], torch.flip(batch["hint"], dims=[-1]))
    assert torch.equal(flipped["label"], batch["label"])
    assert torch.equal(RandomHorizontalFlip(p=0.0)(batch)["image"], batch["image"])


def test_flip_is_per_sample_and_deterministic_given_generator():
    batch = _batch(n=64)
    flip = RandomHorizontalFlip(p=0.5)
    a = flip(batch, generator=torch.Generator().manual_seed(3))["image"]
    b = flip(batch, generator=torch.Generator().manual_seed(3))["image"]
    c = flip(batch, generator=torch.Generator().manual_seed(4))["image"]
    assert torch.equal(a, b) and not torch.equal(a, c)
    flipped = (a != batch["image"]).flatten(1).any(1)
    assert torch.equal(a[flipped], batch["image"][flipped].flip(-1))
    assert 10 < int(flipped.sum()) < 54


def test_flip_moves_image_and_hint_together():
    batch = _batch(n=32)
    batch["hint"] = batch["image"].clone()
    out = RandomHorizontalFlip()(batch, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out["image"], out["hint"])


def test_resize_shapes_dtype_and_constant_image():
    batch = {"image": torch.full((2, 3, 8, 8), 77, dtype=torch.uint8)}
    for size, mode in [(4, "bilinear"), ((16, 12), "bicubic"), (3, "nearest")]:
        out = Resize(size, mode=mode)(batch)["image"]
        h, w = (size, size) if isinstance(size, int) else size
        assert out.shape == (2, 3, h, w) and out.dtype == torch.uint8
        assert (out == 77).all()


def test_resize_downscale_is_antialiased_average():
    x = torch.tensor([[0.0, 1.0] * 4] * 8).view(1, 1, 8, 8)
    out = Resize(1)({"image": x})["image"]
    assert out.item() == pytest.approx(0.5, abs=1e-6)


def test_resize_nearest_samples_pixel_centres():
    x = torch.arange(64, dtype=torch.uint8).view(1, 1, 8, 8)
    nearest = Resize(2, mode="nearest")({"image": x})["image"]
    assert torch.equal(nearest, x[..., 2::4, 2::4])  # centres of the 4x4 blocks


def test_compose_threads_generator_and_leaves_input_untouched():
    batch = _batch()
    before = _copy(batch)
    pipeline = Compose([Resize(4), RandomHorizontalFlip(), ToSymmetric()])
    a = pipeline(batch, generator=torch.Generator().manual_seed(5))
    b = pipeline(batch, generator=torch.Generator().manual_seed(5))
    assert a is not batch and a["image"].shape == (6, 3, 4, 4) and a["image"].dtype == torch.float32
    assert torch.equal(a["image"], b["image"])
    for key, value in before.items():
        assert torch.equal(batch[key], value) and batch[key].dtype == value.dtype
