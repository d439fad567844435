"""Paired hazy/clear data: the folder layouts users already have, synthetic pairs, augmentation.

Pairs are found by :func:`dehaze.pairs.find_pairs` (the layouts are listed there; the pair-finding
names are re-exported here). Images are decoded by OpenCV and converted to RGB at once (:func:`read_rgb`). The datasets return ``dict(hazy, clear, name)`` with 3xHxW float32
tensors in [-1, 1].

Example:
    >>> ds = PairedFolderDataset("sots/indoor", crop=256)  # doctest: +SKIP
    >>> ds[0]["hazy"].shape  # doctest: +SKIP
    torch.Size([3, 256, 256])
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset, get_worker_info

from dehaze.errors import InputError
from dehaze.haze import HazeMixture, HazeSynthesizer, float01, synthesize_pair
from dehaze.io import read_photo
from dehaze.pairs import (
    CLEAR_DIRS,
    HAZY_DIRS,
    IMAGE_EXTENSIONS,
    clear_candidates,
    find_pairs,
    fit_clear,
    list_images,
    read_split,
    split_photos,
)

__all__ = [
    "CLEAR_DIRS",
    "HAZY_DIRS",
    "IMAGE_EXTENSIONS",
    "ConcatKeyed",
    "PairedFolderDataset",
    "SyntheticHazeDataset",
    "clear_candidates",
    "find_pairs",
    "fit_clear",
    "list_images",
    "random_resized_crop",
    "read_rgb",
    "read_split",
    "split_photos",
    "to_tensor",
]


# ----------------------------------------------------------------------------- reading and tensors


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as HxWx3 RGB: uint8 for 8-bit files, float32 in [0, 1] for 16-bit files.

    Decoded by OpenCV (EXIF orientation applied, grey expanded to RGB, alpha dropped): about 3x
    faster than :func:`dehaze.io.read_photo` for a 620x460 PNG, which matters in DataLoader workers.
    A file OpenCV cannot decode is passed to ``read_photo`` for its precise error message.

    Example:
        >>> read_rgb("/no/such.png")
        Traceback (most recent call last):
        ...
        dehaze.errors.InputError: /no/such.png: no such file
    """
    log = cv2.utils.logging
    level = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)  # a broken file is reported once, by read_photo, not by libpng too
    try:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    finally:
        log.setLogLevel(level)
    if img is None:
        photo = read_photo(path)  # raises InputError naming the problem; else a format OpenCV lacks
        rgb = photo.rgb
        return (rgb * 255.0 + 0.5).astype(np.uint8) if photo.bit_depth == 8 else rgb
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.dtype == np.uint8:
        return img
    return img.astype(np.float32) / np.float32(np.iinfo(img.dtype).max if img.dtype.kind in "ui" else 1.0)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 image (uint8, or float in [0, 1]) -> 3xHxW float32 tensor in [-1, 1].

    Example:
        >>> to_tensor(np.full((2, 2, 3), 255, np.uint8)).flatten().tolist()[:2]
        [1.0, 1.0]
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    x = torch.from_numpy(np.ascontiguousarray(float01(image).transpose(2, 0, 1)))
    return x * 2.0 - 1.0


def _listed(f: Path, rels: set[tuple[str, ...]], depth: int) -> bool:
    parts = f.parts
    return any(parts[-k:] in rels for k in range(1, min(depth, len(parts)) + 1))


class _SeededDataset(Dataset):
    """Per-item random generators that are reproducible and differ between epochs and workers.

    An item's key is an index, or an ``(index, epoch)`` pair as
    :class:`~dehaze.train.dist.StepBatchSampler` yields with ``with_epoch``: then the item is a pure
    function of (seed, index, epoch), in DataLoader workers too (what makes training resumable
    exactly). For a plain index, in the main process the item is a pure function of (seed, epoch,
    index) (call ``set_epoch`` for new draws); in a DataLoader worker the worker's torch seed (drawn
    from the main process's torch generator, so reproducible under ``torch.manual_seed``) and a
    per-worker call count are mixed in, so persistent workers also draw new crops and haze every epoch.
    """

    seed: int = 0
    epoch: int = 0
    _calls: int = 0

    def set_epoch(self, epoch: int) -> None:
        """New random draws for every item (main-process loading, or workers created after the call)."""
        self.epoch = epoch

    def _rng(self, key: int | tuple[int, int]) -> tuple[int, np.random.Generator]:
        """The item's index and its random generator."""
        if isinstance(key, tuple):
            index, epoch = key
            return index, np.random.default_rng([self.seed, index, epoch])
        if get_worker_info() is None:
            return key, np.random.default_rng([self.seed, key, self.epoch])
        self._calls += 1  # this worker's own copy of the dataset counts its items
        return key, np.random.default_rng([self.seed, key, self.epoch, torch.initial_seed() % 2**63, self._calls])


class ConcatKeyed(ConcatDataset):
    """:class:`torch.utils.data.ConcatDataset` that also takes ``(index, epoch)`` keys (see
    :class:`_SeededDataset`) and passes them on with the member's own index."""

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, None)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        i = bisect.bisect_right(self.cumulative_sizes, index)
        local = index - (self.cumulative_sizes[i - 1] if i else 0)
        return self.datasets[i][local if epoch is None else (local, epoch)]


# ----------------------------------------------------------------------------- real pairs


class PairedFolderDataset(_SeededDataset):
    """Real (hazy, clear) pairs of a folder (any layout of :func:`find_pairs`).

    Training (``augment=True``): the same random ``crop`` x ``crop`` window and horizontal flip on both
    images (albumentations with ``additional_targets={"clear": "image"}``); images smaller than the
    crop are reflect-padded. Validation (``augment=False``): a centre crop of ``crop`` if given, else
    the full image centre-cropped to a multiple of ``multiple`` (use batch size 1 for mixed sizes).

    Args:
        root: dataset folder.
        crop: crop size in pixels, or None for full images (validation only).
        augment: random crop and flip (True) or deterministic centre crop (False).
        multiple: validation sizes are cropped down to a multiple of this (e.g. the generator's ``.multiple``).
        seed: seed of the augmentation randomness (see ``set_epoch``).

    Example:
        >>> ds = PairedFolderDataset("sots/outdoor", crop=None, augment=False, multiple=32)  # doctest: +SKIP
        >>> item = ds[0]; item["hazy"].shape, item["name"]  # doctest: +SKIP
        (torch.Size([3, 384, 544]), '0001_0.8_0.2')
    """

    def __init__(
        self, root: str | Path, crop: int | None = 256, augment: bool = True, multiple: int = 1, seed: int = 0
    ) -> None:
        if augment and crop is None:
            raise ValueError("augment=True needs a crop size")
        if (crop is not None and crop < 1) or multiple < 1:
            raise ValueError(f"crop and multiple must be positive, got crop={crop}, multiple={multiple}")
        self.root, self.crop, self.augment, self.multiple = Path(root), crop, augment, multiple
        self.seed = seed
        self.pairs = find_pairs(root)
        reflect = cv2.BORDER_REFLECT_101
        if augment:
            ops = [
                A.PadIfNeeded(crop, crop, border_mode=reflect),
                A.RandomCrop(crop, crop),
                A.HorizontalFlip(p=0.5),
            ]
        elif crop is not None:
            ops = [A.PadIfNeeded(crop, crop, border_mode=reflect), A.CenterCrop(crop, crop)]
        else:
            ops = []
        self.transform = A.Compose(ops, additional_targets={"clear": "image"}) if ops else None

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, rng = self._rng(key) if self.augment else (key[0] if isinstance(key, tuple) else key, None)
        hp, cp = self.pairs[index]
        hazy, clear = read_rgb(hp), read_rgb(cp)
        clear = fit_clear(hazy, clear, hp, cp)
        if hazy.dtype != clear.dtype:  # one 8-bit and one 16-bit file
            hazy, clear = float01(hazy), float01(clear)
        if self.transform is not None:
            if rng is not None:
                self.transform.set_random_seed(int(rng.integers(2**31)))
            out = self.transform(image=hazy, clear=clear)
            hazy, clear = out["image"], out["clear"]
        elif self.multiple > 1:
            h, w = hazy.shape[:2]
            nh, nw = max(self.multiple, h - h % self.multiple), max(self.multiple, w - w % self.multiple)
            if nh > h or nw > w:
                raise InputError(f"{hp}: {w}x{h} is smaller than the size multiple {self.multiple}")
            y, x = (h - nh) // 2, (w - nw) // 2
            hazy, clear = hazy[y : y + nh, x : x + nw], clear[y : y + nh, x : x + nw]
        return {"hazy": to_tensor(hazy), "clear": to_tensor(clear), "name": hp.stem}


# ----------------------------------------------------------------------------- synthetic pairs


def random_resized_crop(
    image: np.ndarray,
    size: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.25, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> np.ndarray:
    """Random window of a random area and aspect ratio, resized to ``size`` x ``size``.

    The window is never smaller than ``size`` on either side, so the crop is never upsampled from
    fewer pixels than it has; an image smaller than ``size`` is first upscaled (shorter side to ``size``).

    Args:
        image: HxWx3 array.
        size: output side in pixels.
        rng: NumPy generator.
        scale: range of the window area as a fraction of the image area (raised to fit ``size``).
        ratio: range of the window's width/height (log-uniform).

    Example:
        >>> img = np.zeros((300, 400, 3), np.uint8)
        >>> random_resized_crop(img, 128, np.random.default_rng(0)).shape
        (128, 128, 3)
    """
    h, w = image.shape[:2]
    if min(h, w) < size:
        f = size / min(h, w)
        h, w = max(size, round(h * f)), max(size, round(w * f))
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_CUBIC)
    area = h * w
    lo = max(scale[0], size * size / area)
    a = area * rng.uniform(lo, max(lo, scale[1]))
    r = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
    cw = int(np.clip(round(math.sqrt(a * r)), size, w))
    ch = int(np.clip(round(math.sqrt(a / r)), size, h))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    win = image[y : y + ch, x : x + cw]
    if (ch, cw) == (size, size):
        return np.ascontiguousarray(win)
    return cv2.resize(win, (size, size), interpolation=cv2.INTER_AREA)


class SyntheticHazeDataset(_SeededDataset):
    """Pairs made on the fly from clean photos: random crop and flip, then haze synthesised on the crop.

    Each item picks a clean photo (item ``i`` of an epoch uses photo ``i % n`` when
    ``samples_per_epoch`` is None, else a random one), takes a :func:`random_resized_crop`, flips it
    horizontally with probability 1/2 and adds haze with ``synth`` (depth prior computed on the crop).
    Randomness is per item from ``seed``, the index and the epoch (given with the index as an
    ``(index, epoch)`` key by the trainers' step sampler; for a plain index, in DataLoader workers
    also the worker's torch seed: see :class:`_SeededDataset`), so items are reproducible, workers
    never repeat each other and every epoch brings new crops and haze.

    Args:
        clean_roots: folders of clean photos (searched recursively).
        crop: output size in pixels.
        synth: haze ranges (:class:`~dehaze.haze.HazeSynthesizer` or :class:`~dehaze.haze.HazeMixture`).
        samples_per_epoch: length of an epoch; None for one item per photo.
        seed: base seed.
        cache: keep decoded photos in memory (per process; preloaded here, so forked workers share them).
        scale: ``random_resized_crop`` area range.
        with_asm: also return the synthesised airlight ``A`` (3,) and transmission ``t`` (1, H, W),
            to supervise a generator with the ``asm`` head.
        exclude: photos to leave out, as paths relative to a clean root (:func:`read_split`): a file
            whose path ends with one of them is skipped (the held-out split).

    ``clean_roots`` may also name single photos.

    Example:
        >>> from dehaze.haze import haze_preset
        >>> ds = SyntheticHazeDataset(["clean/bsds500"], 256, haze_preset("mixed"))  # doctest: +SKIP
        >>> ds[0]["meta"]["prior"]  # doctest: +SKIP
        'ramp+noise'
    """

    def __init__(
        self,
        clean_roots: Sequence[str | Path],
        crop: int,
        synth: HazeSynthesizer | HazeMixture,
        samples_per_epoch: int | None = None,
        seed: int = 0,
        cache: bool = False,
        scale: tuple[float, float] = (0.25, 1.0),
        with_asm: bool = False,
        exclude: Sequence[str] = (),
    ) -> None:
        if isinstance(clean_roots, (str, Path)):
            clean_roots = [clean_roots]
        if crop < 8:
            raise ValueError(f"crop must be at least 8 pixels, got {crop}")
        if samples_per_epoch is not None and samples_per_epoch < 1:
            raise ValueError(f"samples_per_epoch must be positive, got {samples_per_epoch}")
        self.files: list[Path] = []
        rels = {Path(r).parts for r in exclude}
        depth = max((len(r) for r in rels), default=0)
        for root in clean_roots:
            found = [Path(root)] if Path(root).is_file() else list_images(root, recursive=True)
            found = [f for f in found if not _listed(f, rels, depth)]
            if not found:
                raise InputError(f"{root}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            self.files += found
        self.crop, self.synth, self.seed, self.scale, self.with_asm = crop, synth, seed, scale, with_asm
        self.samples_per_epoch = samples_per_epoch
        self.cache: dict[int, np.ndarray] | None = None
        if cache:
            self.cache = {i: read_rgb(f) for i, f in enumerate(self.files)}

    def __len__(self) -> int:
        return self.samples_per_epoch or len(self.files)

    def _photo(self, i: int) -> np.ndarray:
        if self.cache is not None:
            return self.cache[i]
        return read_rgb(self.files[i])

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, rng = self._rng(key)
        i = index % len(self.files) if self.samples_per_epoch is None else int(rng.integers(len(self.files)))
        clear = random_resized_crop(self._photo(i), self.crop, rng, self.scale)
        if rng.random() < 0.5:
            clear = clear[:, ::-1]
        # the scene type's exposure gain (HazeSynthesizer.exposure) changes the target as well
        clear, hazy, meta = synthesize_pair(float01(np.ascontiguousarray(clear)), rng, self.synth, self.with_asm)
        item = {"hazy": to_tensor(hazy), "clear": to_tensor(clear), "name": self.files[i].stem}
        if self.with_asm:
            item["A"] = torch.tensor(meta["A"], dtype=torch.float32)
            item["t"] = torch.from_numpy(meta["transmission"])[None]
        item["meta"] = {k: meta[k] for k in ("A", "beta", "prior", "mean_t", "exposure")}
        return item
