"""Training images for unconditional GANs: image folders and torchvision data sets.

Images come out as ``(3, R, R)`` float tensors in ``[-1, 1]``. A folder (class sub-folders
allowed; every readable image below it is used) is centre-cropped to a square and resized
to ``R`` (area interpolation when shrinking, cubic when enlarging). Small data sets are
decoded once and kept in memory as uint8; larger folders are decoded on the fly.

The torchvision data sets ``cifar10``, ``cifar100`` (training split) and ``stl10``
(``unlabeled`` split, as Mimicry) are read from a local root and never downloaded.

The trainer draws them with :class:`dehaze.train.dist.StepBatchSampler` (the batch of step ``s`` a
pure function of ``(seed, s)``), so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from dehaze.errors import ConfigError, InputError
from dehaze.io import format_for_extension, read_photo

__all__ = ["ImageFolder", "TensorImages", "TORCHVISION_SETS", "load_dataset"]

PRELOAD_BYTES = 2 * 1024 ** 3  # keep decoded images in memory up to this size


def _square_resize(rgb: np.ndarray, size: int | None) -> np.ndarray:
    """Centre crop to a square, resize to ``size``; HxWx3 float [0, 1] → uint8."""
    if size is not None:
        h, w = rgb.shape[:2]
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        rgb = rgb[top:top + s, left:left + s]
        if s != size:
            rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if s > size else cv2.INTER_CUBIC)
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def _to_float(u8: torch.Tensor) -> torch.Tensor:
    return u8.float().div_(127.5).sub_(1.0)


class TensorImages(Dataset):
    """Images held in memory as a uint8 tensor ``(N, 3, R, R)``; items are float ``[-1, 1]``."""

    def __init__(self, data: torch.Tensor, name: str = "images"):
        if data.dtype != torch.uint8 or data.dim() != 4 or data.shape[1] != 3:
            raise ValueError(f"expected uint8 images (N, 3, H, W), got {data.dtype} {tuple(data.shape)}")
        self.data, self.name = data, name

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return _to_float(self.data[i])

    @property
    def resolution(self) -> int:
        return int(self.data.shape[-1])


class ImageFolder(Dataset):
    """Every image file below ``root`` (sorted paths), as ``(3, R, R)`` in ``[-1, 1]``.

    Args:
        root: folder (class sub-folders allowed).
        resolution: output size ``R`` (centre crop + resize); ``None`` keeps the size, which must
            then be square and the same for all images.
        preload: decode everything once into memory (``None``: when it fits in 2 GiB).

    Example:
        >>> ds = ImageFolder("../shared/data/cifar10/test", resolution=32)  # doctest: +SKIP
        >>> ds[0].shape  # doctest: +SKIP
        torch.Size([3, 32, 32])
    """

    def __init__(self, root: str | Path, resolution: int | None = None, preload: bool | None = None):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise InputError(f"image folder not found: {self.root}")
        self.files = sorted(p for p in self.root.rglob("*") if p.is_file() and format_for_extension(p) is not None
                            and not p.name.startswith("."))
        if not self.files:
            raise InputError(f"no images (PNG, JPEG, TIFF, WEBP, BMP) found under {self.root}")
        first = self._read(0, resolution)
        self.resolution = first.shape[-1]
        self._fixed = resolution
        if preload is None:
            preload = len(self.files) * first.numel() <= PRELOAD_BYTES
        self.data = None
        if preload:
            data = torch.empty(len(self.files), *first.shape, dtype=torch.uint8)
            data[0] = first
            for i in range(1, len(self.files)):
                data[i] = self._read(i, resolution)
            self.data = data

    def _read(self, i: int, size: int | None) -> torch.Tensor:
        rgb = read_photo(self.files[i]).rgb
        if size is None:
            h, w = rgb.shape[:2]
            if h != w or (hasattr(self, "resolution") and h != self.resolution):
                raise InputError(f"{self.files[i]} is {w}x{h}; images of different or non-square sizes need a "
                                 "resolution (--resolution)")
        return torch.from_numpy(_square_resize(rgb, size)).permute(2, 0, 1).contiguous()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        u8 = self.data[i] if self.data is not None else self._read(i, self._fixed)
        return _to_float(u8)


# name -> (torchvision class, constructor kwargs, what to put under the root)
TORCHVISION_SETS = {
    "cifar10": ("CIFAR10", {"train": True}, "the extracted 'cifar-10-batches-py' folder (CIFAR-10 python version)"),
    "cifar100": ("CIFAR100", {"train": True}, "the extracted 'cifar-100-python' folder (CIFAR-100 python version)"),
    "stl10": ("STL10", {"split": "unlabeled"}, "the extracted 'stl10_binary' folder (STL-10 binary version)"),
}


def _torchvision_set(name: str, root: str | Path | None, resolution: int | None) -> TensorImages:
    import torchvision.datasets as tvd

    cls_name, kwargs, what = TORCHVISION_SETS[name]
    if not root:
        raise ConfigError(f"--data {name} needs --data-root: a folder holding {what}")
    root = Path(root).expanduser()
    try:
        ds = getattr(tvd, cls_name)(str(root), download=False, **kwargs)
    except RuntimeError:
        raise InputError(f"{name} not found under {root}: put {what} there (nothing is downloaded)") from None
    arr = ds.data  # CIFAR: (N, 32, 32, 3) uint8; STL-10: (N, 3, 96, 96) uint8
    data = torch.from_numpy(np.ascontiguousarray(arr))
    if data.shape[-1] == 3:
        data = data.permute(0, 3, 1, 2).contiguous()
    if resolution and data.shape[-1] != resolution:
        out = torch.empty(data.shape[0], 3, resolution, resolution, dtype=torch.uint8)
        for i in range(0, data.shape[0], 1000):
            x = torch.nn.functional.interpolate(data[i:i + 1000].float(), size=(resolution, resolution),
                                                mode="area" if data.shape[-1] > resolution else "bicubic")
            out[i:i + 1000] = x.round().clamp(0, 255).to(torch.uint8)
        data = out
    return TensorImages(data, name)


def load_dataset(data: str | Path, root: str | Path | None = None, resolution: int | None = None) -> Dataset:
    """A torchvision data set by name (``cifar10``, ``cifar100``, ``stl10`` under ``root``) or an image folder."""
    if str(data).lower() in TORCHVISION_SETS:
        return _torchvision_set(str(data).lower(), root, resolution)
    return ImageFolder(data, resolution)
