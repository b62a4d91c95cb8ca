"""Depth and normal hints: depth maps become 1 - 2 depth; the normals of a plane's depth are its
analytic normal; a local TorchScript depth model is used and normalised; bad sources are errors."""

import pytest
import torch

from difflab.core.errors import ConfigError, DataError
from difflab.data import make_hint
from difflab.data.hint_normal import normals


def plane(a: float, b: float, c: float, n: int = 2, size: int = 12) -> torch.Tensor:
    """Depth a x + b y + c on a size x size grid (x: column, y: row), [n, 1, size, size]."""
    yy, xx = torch.meshgrid(
        torch.arange(float(size), dtype=torch.float64),
        torch.arange(float(size), dtype=torch.float64),
        indexing="ij",
    )
    return (a * xx + b * yy + c).expand(n, 1, size, size)


def test_normals_of_a_plane_are_its_analytic_normal_everywhere():
    a, b, scale = 0.01, -0.03, 20.0
    n = normals(plane(a, b, 0.5), scale)
    expected = torch.tensor([scale * a, scale * b, 1.0], dtype=torch.float64)
    expected = expected / expected.norm()
    assert n.shape == (2, 3, 12, 12)
    torch.testing.assert_close(n, expected.view(1, 3, 1, 1).expand_as(n), rtol=0, atol=1e-12)


def test_the_normal_hint_of_a_paired_depth_map_uses_the_image_width_as_scale():
    depth = plane(0.02, 0.01, 0.3).float()
    out = make_hint("normal")({"image": torch.zeros(2, 3, 12, 12), "depth": depth})["hint"]
    torch.testing.assert_close(out, normals(depth, 12.0))
    assert make_hint("normal").channels(1) == 3


def test_depth_hints_are_near_bright_and_need_depths_in_0_1():
    depth = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    out = make_hint("depth")({"image": torch.zeros(2, 1, 8, 8), "depth": depth})["hint"]
    torch.testing.assert_close(out, 1 - 2 * depth)
    with pytest.raises(DataError, match=r"in \[0, 1\]"):
        make_hint("depth")({"image": torch.zeros(2, 1, 8, 8), "depth": depth + 1})
    with pytest.raises(DataError, match=r"batch\['depth'\]"):
        make_hint("depth")({"image": torch.zeros(2, 1, 8, 8)})


class Brightness(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 3.0 * x.mean(dim=1, keepdim=True) + 7.0


def save_model(path) -> None:
    """Brightness() as TorchScript (.pt), a torch.export program (.pt2) or ONNX (.onnx)."""
    if path.suffix == ".onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
        torch.onnx.export(Brightness(), (torch.zeros(2, 3, 8, 8),), str(path), dynamo=True)
    elif path.suffix == ".pt2":
        example = (torch.zeros(2, 3, 8, 8),)
        torch.export.save(torch.export.export(Brightness(), example), str(path))
    else:
        torch.jit.script(Brightness()).save(str(path))


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")  # jit, onnx
@pytest.mark.parametrize("name", ["depth.pt", "depth.pt2", "depth.onnx"])
def test_a_local_depth_model_is_run_and_normalised(tmp_path, name):
    path = tmp_path / name
    save_model(path)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    out = make_hint("depth", source="model", model=str(path))({"image": x})["hint"]
    d = x.mean(dim=1, keepdim=True)
    lo, hi = d.amin(dim=(1, 2, 3), keepdim=True), d.amax(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(out, 1 - 2 * (d - lo) / (hi - lo))


@pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")
def test_depth_sources_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="model=PATH is needed"):
        make_hint("depth", source="model")
    with pytest.raises(ConfigError, match="no such file"):
        make_hint("normal", source="model", model=str(tmp_path / "absent.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="junk.pt: not a"):
        make_hint("depth", source="model", model=str(tmp_path / "junk.pt"))
