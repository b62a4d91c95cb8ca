"""Control hints for sampling a ControlNet run (Zhang et al. 2023): [M, C_hint, H, W] in
[-1, 1], made by the run's hint transform (`model.controlnet.hint`, `hint_options`) from image
files (`difflab sample --hint-image`) or from a dataset's first images (the training grids
and in-training evaluation), or read ready-made from map files (`--hint-map`). Image i of a
generation gets hint i % M, whatever its batch or rank. A ControlNet run samples only with
hints; any other run takes none (check_hints).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from difflab.config.schema import Config
from difflab.core.errors import ConfigError, DataError
from difflab.data import ToSymmetric, make_hint
from difflab.data.hint_maps import read_hint_map
from difflab.data.hints import grey
from difflab.data.image_folder import EXTENSIONS, decode_images
from difflab.runs.controlnet import hint_transform
from difflab.runs.load import LoadedRun


def hint_shape(config: Config, image_shape: tuple[int, int, int]) -> tuple[int, int, int] | None:
    """(C_hint, H, W) of the hints of a ControlNet run's images, None for other runs."""
    cn = config.model.controlnet
    if cn.base_run is None:
        return None
    c, h, w = image_shape
    return make_hint(cn.hint, **cn.hint_options).channels(c), h, w


def _refuse_hints() -> ConfigError:
    return ConfigError(
        "this run is not a ControlNet run (model.controlnet.base_run is unset): it takes no "
        "hints (--hint-image, --hint-map)"
    )


def check_hints(run: LoadedRun, hints: Tensor | None) -> None:
    """A ControlNet run needs float hints [M >= 1, C_hint, H, W] of its hint transform's
    channels and its image size; any other run takes none. ConfigError saying what to pass."""
    expected = hint_shape(run.config, run.image_shape)
    if expected is None:
        if hints is not None:
            raise _refuse_hints()
        return
    cn = run.config.model.controlnet
    if hints is None:
        raise ConfigError(
            f"this run is a ControlNet run (model.controlnet.base_run={cn.base_run}, hint "
            f"{cn.hint!r}): its samples need control hints; pass --hint-image PATH (an image "
            "or a folder of images) or --hint-map PATH (ready-made maps) to difflab sample/eval, "
            "or hints= to generate"
        )
    if hints.ndim != 4 or hints.shape[0] < 1 or tuple(hints.shape[1:]) != expected:
        raise ConfigError(
            f"hints must be [M, {', '.join(map(str, expected))}] ({cn.hint!r} hints of this "
            f"run's images), got shape {tuple(hints.shape)}"
        )
    if not hints.is_floating_point():
        raise ConfigError(f"hints must be float in [-1, 1], got {hints.dtype}")


def cycled(hints: Tensor | None, rows: range) -> Tensor | None:
    """hints[i % M] for each i in rows: [len(rows), C_hint, H, W], or None without hints."""
    if hints is None:
        return None
    index = torch.arange(rows.start, rows.stop, device=hints.device) % hints.shape[0]
    return hints[index]


def hints_from_files(path: str | Path, config: Config, image_shape: tuple[int, int, int]) -> Tensor:
    """Hints [M, C_hint, H, W] from an image file or a folder of images (sorted by name): each
    decoded as the image-folder dataset decodes (image_folder.decode_images, with its bicubic
    resize to the run's H x W), given the run's channels (luma for a grey run, grey repeated
    for an RGB one), mapped to [-1, 1], then through the run's hint transform.

    DataError naming a missing, empty or unreadable file or folder."""
    if hint_shape(config, image_shape) is None:
        raise _refuse_hints()
    x = images_from_files(path, image_shape, "--hint-image")
    hint = hint_transform(config.model.controlnet)
    assert hint is not None  # a ControlNet run, checked above
    return hint({"image": x})["hint"]


def images_from_files(path: str | Path, image_shape: tuple[int, int, int], flag: str) -> Tensor:
    """Images [M, C, H, W] in [-1, 1] of the run's shape from an image file or a folder of
    images (sorted by name), decoded as the image-folder dataset decodes (bicubic resize to
    H x W; luma for a grey run, grey repeated for an RGB one); DataError naming a bad file."""
    files = _hint_files(Path(path), flag)
    c, h, w = image_shape
    decoded = decode_images(files, [0] * len(files), (h, w), num_workers=1)
    if decoded.skipped:
        bad, reason = decoded.skipped[0]
        raise DataError(f"{flag} {bad}: {reason}")
    x = ToSymmetric()({"image": torch.from_numpy(decoded.images)})["image"]  # [M, C', H, W]
    return _with_channels(x, c, path, flag)


def hint_maps_from_files(
    path: str | Path, config: Config, image_shape: tuple[int, int, int]
) -> Tensor:
    """Ready-made hints [M, C_hint, H, W] from a map file or a folder of maps (sorted by name),
    read as they are (data.hint_maps.read_hint_map: the run's H x W, no resize); DataError
    naming a missing, unreadable or mis-sized file."""
    expected = hint_shape(config, image_shape)
    if expected is None:
        raise _refuse_hints()
    files = _hint_files(Path(path), "--hint-map")
    return torch.stack([read_hint_map(f, expected[0], expected[1:], "--hint-map") for f in files])


def _hint_files(path: Path, flag: str = "--hint-image") -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{flag} {path}: no such file or folder")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in EXTENSIONS)
    if not files:
        raise DataError(f"{flag} folder {path} holds no {'/'.join(EXTENSIONS)} images")
    return files


def _with_channels(x: Tensor, channels: int, path: str | Path, flag: str) -> Tensor:
    """[M, 1 or 3, H, W] -> [M, channels, H, W]: luma for grey, grey repeated for RGB."""
    if x.shape[1] == channels:
        return x
    if channels == 1:
        return grey(x)
    if x.shape[1] == 1:
        return x.expand(-1, channels, -1, -1)
    raise DataError(f"{flag} {path}: {x.shape[1]}-channel images for a {channels}-channel run")
