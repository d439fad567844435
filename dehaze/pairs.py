"""Pairing hazy and clear images in the folder layouts users already have (NumPy only, no torch).

Layouts understood by :func:`find_pairs` (tags and folder names are case-insensitive):

- RESIDE (ITS, OTS, SOTS): ``root/hazy/`` next to ``root/clear/`` (or ``GT/``, ``gt/``, ``clean/``,
  ``ground_truth/``). A hazy file pairs with the clear file whose stem is the hazy stem or its
  longest ``_``-separated prefix: ``1400_1.png`` -> ``1400.png``, ``0051_0.8_0.2.jpg`` -> ``0051.png``,
  ``1_1_0.90179.png`` -> ``1.png``. Several hazy images may share one clear image.
- Same-name pairs: ``hazy/x.png`` -> ``GT/x.png`` (the extension may differ).
- ``_hazy``/``_GT`` tags (O-HAZE, I-HAZE, NH-HAZE, Dense-Haze): ``01_outdoor_hazy.jpg`` ->
  ``01_outdoor_GT.jpg``, ``01_hazy.png`` -> ``01_GT.png``, in ``hazy/`` + ``GT/`` or all in one folder.

Files are found by extension (:data:`IMAGE_EXTENSIONS`), not by content: listing a RESIDE folder
(300,000 files) must not open every file; a file whose content is not an image fails when it is read,
with its name in the message. :func:`fit_clear` reconciles the sizes of a read pair.

Used by ``dehaze eval`` (:mod:`dehaze.evaluation`, which runs without torch) and by the training
datasets of :mod:`dehaze.data`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dehaze.errors import InputError

__all__ = [
    "CLEAR_DIRS",
    "HAZY_DIRS",
    "IMAGE_EXTENSIONS",
    "clear_candidates",
    "find_pairs",
    "fit_clear",
    "list_images",
    "read_split",
    "split_photos",
]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
HAZY_DIRS = ("hazy", "haze")
CLEAR_DIRS = ("clear", "gt", "clean", "ground_truth", "groundtruth")
_HAZY_TAG = re.compile(r"[_-](hazy|haze)$", re.IGNORECASE)
_CLEAR_TAG = re.compile(r"[_-](gt|clear|clean)$", re.IGNORECASE)
_SHOW = 5  # unmatched file names shown in an error message


# ----------------------------------------------------------------------------- listing and pairing


def _require_folder(root: str | Path) -> Path:
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: no such folder")
    if not root.is_dir():
        raise InputError(f"{root}: is a file, not a folder")
    return root


def read_split(path: str | Path) -> list[str]:
    """The photos a split file lists: one path per line relative to a clean-photo root, ``#`` comments.

    Example (``training/splits/heldout-v1.txt``, the photos kept out of training)::

        >>> read_split("training/splits/heldout-v1.txt")[0]  # doctest: +SKIP
        'sun-hays80/abbey_sun_asztnlqhlrvirneh.jpg'
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such split file")
    lines = (ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines())
    return [ln for ln in lines if ln]


def split_photos(split: str | Path, root: str | Path) -> list[Path]:
    """The files of a split under ``root``; one InputError naming the first missing one."""
    files = [Path(root) / rel for rel in read_split(split)]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise InputError(f"{split}: {len(missing)} listed photo(s) not under {root}, e.g. {missing[0]}")
    return files


def list_images(root: str | Path, recursive: bool = True) -> list[Path]:
    """Image files under ``root``, sorted; found by extension (:data:`IMAGE_EXTENSIONS`, any case).

    Hidden files and folders (``.name``) are skipped. Raises :class:`InputError` when ``root`` is
    missing or not a folder; an empty folder gives an empty list.

    Example:
        >>> list_images("/no/such/folder")
        Traceback (most recent call last):
        ...
        dehaze.errors.InputError: /no/such/folder: no such folder
    """
    root = _require_folder(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in filenames:
            if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS:
                found.append(Path(dirpath) / f)
        if not recursive:
            break
    return sorted(found)


def _names(paths: Sequence[Path], root: Path) -> str:
    shown = ", ".join(str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in paths[:_SHOW])
    return shown + (f" and {len(paths) - _SHOW} more" if len(paths) > _SHOW else "")


def _find_subdir(root: Path, names: Sequence[str]) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.lower() in names)


def clear_candidates(stem: str) -> list[str]:
    """Clear-image stems a hazy stem may pair with, most specific first (the first one present wins).

    Example:
        >>> clear_candidates("0051_0.8_0.2"), clear_candidates("01_outdoor_hazy")
        (['0051_0.8_0.2', '0051_0.8', '0051'], ['01_outdoor_hazy', '01_outdoor', '01'])
    """
    keys = [stem]
    base = _HAZY_TAG.sub("", stem)
    if base != stem:
        keys.append(base)
    parts = base.split("_")
    keys += ["_".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]
    return keys


def _match(hazy: list[Path], clear: list[Path], root: Path) -> list[tuple[Path, Path]]:
    index: dict[str, Path] = {}
    for c in clear:
        for key in {c.stem, _CLEAR_TAG.sub("", c.stem)}:
            if key in index and index[key] != c:
                raise InputError(
                    f"{root}: clear images {_names([index[key], c], root)} share the name {key!r}; "
                    "keep one file per clear image"
                )
            index[key] = c
    pairs, missing, used = [], [], set()
    for h in hazy:
        c = next((index[k] for k in clear_candidates(h.stem) if k in index), None)
        if c is None:
            missing.append(h)
        else:
            pairs.append((h, c))
            used.add(c)
    unused = [c for c in clear if c not in used]
    if missing or unused:
        msg = []
        if missing:
            msg.append(f"{len(missing)} hazy image(s) have no clear image: {_names(missing, root)}")
        if unused:
            msg.append(f"{len(unused)} clear image(s) have no hazy image: {_names(unused, root)}")
        raise InputError(
            f"{root}: {'; '.join(msg)} (a hazy 1400_1.png pairs with clear 1400.png, 01_hazy.png with "
            "01_GT.png, x.png with x.png)"
        )
    return sorted(pairs)


def find_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """All (hazy, clear) pairs of a dataset folder, sorted by hazy path; see the module doc for layouts.

    Raises :class:`InputError` for a missing or empty folder, an unknown layout, and for any hazy
    image without a clear image or clear image without a hazy image (the message names the first
    few files and the count), so training never silently uses fewer pairs. Sub-folders of
    ``hazy/`` and ``clear/`` are not searched.

    Example:
        >>> find_pairs("/no/such/folder")
        Traceback (most recent call last):
        ...
        dehaze.errors.InputError: /no/such/folder: no such folder
    """
    root = _require_folder(root)
    hazy_dirs = _find_subdir(root, HAZY_DIRS)
    if len(hazy_dirs) > 1:
        raise InputError(f"{root}: several hazy folders ({_names(hazy_dirs, root)}); keep one")
    if hazy_dirs:
        clear_dirs = _find_subdir(root, CLEAR_DIRS)
        if not clear_dirs:
            raise InputError(f"{root}: has {hazy_dirs[0].name}/ but no clear/ or GT/ folder next to it")
        if len(clear_dirs) > 1:
            raise InputError(f"{root}: several clear folders ({_names(clear_dirs, root)}); keep one")
        hazy = list_images(hazy_dirs[0], recursive=False)
        clear = list_images(clear_dirs[0], recursive=False)
        if not hazy:
            raise InputError(f"{hazy_dirs[0]}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        if not clear:
            raise InputError(f"{clear_dirs[0]}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        return _match(hazy, clear, root)
    files = list_images(root, recursive=False)
    if not files:
        raise InputError(
            f"{root}: no images and no hazy/ folder; expected hazy/ + clear/ (or GT/), "
            "or *_hazy / *_GT images side by side"
        )
    hazy = [f for f in files if _HAZY_TAG.search(f.stem)]
    clear = [f for f in files if _CLEAR_TAG.search(f.stem)]
    other = [f for f in files if f not in hazy and f not in clear]
    if not hazy or not clear or other:
        what = other if (hazy and clear) else files
        raise InputError(
            f"{root}: cannot tell hazy from clear for {len(what)} image(s): {_names(what, root)}; use hazy/ "
            "and clear/ (or GT/) folders, or name the files *_hazy and *_GT"
        )
    return _match(hazy, clear, root)


def fit_clear(hazy: np.ndarray, clear: np.ndarray, hp: Path, cp: Path) -> np.ndarray:
    """The clear image, centre-cropped to the hazy size when up to 32 px larger, else an error.

    The original RESIDE SOTS indoor release has 640x480 clear images for 620x460 hazy ones.
    """
    (hh, hw), (ch, cw) = hazy.shape[:2], clear.shape[:2]
    if (hh, hw) == (ch, cw):
        return clear
    dy, dx = ch - hh, cw - hw
    if 0 <= dy <= 32 and 0 <= dx <= 32 and dy % 2 == 0 and dx % 2 == 0:
        return clear[dy // 2 : dy // 2 + hh, dx // 2 : dx // 2 + hw]
    raise InputError(f"{hp} ({hw}x{hh}) and its clear image {cp} ({cw}x{ch}) differ in size")
