"""Score restoration methods on a paired folder: PSNR, SSIM, spectral distance and runtime.

The library behind ``dehaze eval`` (:mod:`dehaze.cli.evaluate`), the model card's evaluation
(``dehaze export --eval``) and the training reports. Pairs come from :func:`dehaze.pairs.find_pairs`
(RESIDE ``hazy/1400_1.png`` <-> ``clear/1400.png``, ``hazy/0051_0.8_0.2.jpg`` <-> ``clear/0051.png``,
same names, ``*_hazy`` / ``*_GT``); a clear image slightly larger than its hazy one is centre-cropped
(RESIDE SOTS indoor: 640x480 clear for 620x460 hazy), as in training. Metrics are the NumPy ones of
:mod:`dehaze.metrics`: nothing here imports torch, so it runs in the base install.

Folders without ground truth (real hazy photos: no ``clear/`` or ``GT/`` folder and no ``*_GT`` file,
see :func:`has_ground_truth`) are scored without reference by :func:`evaluate_noref`: FADE fog
density, newly clipped pixels, brightness ratio and noise amplification
(:mod:`dehaze.metrics.noref`), per method and photo, with means and medians, and optionally a
contact sheet of thumbnails (:func:`contact_sheet`).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from dehaze.errors import InputError
from dehaze.inference import identity, restore_photo
from dehaze.io import Photo, read_photo, to_float, write_photo
from dehaze.metrics import (
    FADE_SIDE,
    brightness_ratio,
    fade_details,
    newly_clipped,
    noise_amplification,
    psnr_np,
    spectral_distance_np,
    ssim_np,
)
from dehaze.pairs import (
    _CLEAR_TAG,
    CLEAR_DIRS,
    HAZY_DIRS,
    IMAGE_EXTENSIONS,
    find_pairs,
    fit_clear,
    list_images,
)

__all__ = [
    "METRICS",
    "NOREF_METRICS",
    "SHEET_WIDTH",
    "contact_sheet",
    "evaluate",
    "evaluate_noref",
    "format_noref_table",
    "format_table",
    "has_ground_truth",
    "noref_photos",
    "score",
    "score_noref",
]

METRICS = ("psnr", "ssim", "spectral")
# no-reference scores, summarised per method (mean and median over the photos)
NOREF_METRICS = ("fade", "clipped", "clipped_black", "clipped_white", "brightness_ratio", "noise_amplification")
SHEET_WIDTH = 200  # contact sheet: thumbnail width in px (ten photos x three columns: about 1.7 MB of PNG)


def score(out: np.ndarray, clear: np.ndarray) -> dict[str, float]:
    """PSNR, SSIM and spectral distance of one restored image against its ground truth (HxWx3 in [0,1]).

    ``out`` is clipped to ``[0, 1]`` first. NumPy metrics (:mod:`dehaze.metrics`), no torch.

    Example:
        >>> x = np.full((16, 16, 3), 0.5)
        >>> score(x, x)["spectral"], round(score(x + 0.1, x)["psnr"], 2)
        (0.0, 20.0)
    """
    x = np.clip(out, 0.0, 1.0)
    return {"psnr": psnr_np(x, clear), "ssim": ssim_np(x, clear), "spectral": spectral_distance_np(x, clear)}


def evaluate(set_dir: str | Path, methods: dict, limit: int | None = None, progress: bool = True) -> dict:
    """Score every method on every pair of ``set_dir``.

    Args:
        set_dir: a paired folder (see :func:`dehaze.pairs.find_pairs`).
        methods: name -> callable ``HxWx3 [0,1] -> HxWx3 [0,1]``.
        limit: only the first ``limit`` pairs.

    Returns:
        ``{"set": ..., "pairs": N, "methods": {name: {"mean": {...}, "seconds_per_megapixel": s,
        "images": [{"hazy", "clear", "psnr", "ssim", "spectral", "seconds", "megapixels"}, ...]}}}``.
    """
    pairs = find_pairs(set_dir)[:limit]
    results = {name: {"images": [], "seconds": 0.0, "megapixels": 0.0} for name in methods}
    warm = set()
    for hazy_path, clear_path in tqdm(pairs, desc="eval", unit="pair", file=sys.stderr, disable=not progress):
        hazy = read_photo(hazy_path).rgb
        # same size, or the clear image centre-cropped as RESIDE SOTS needs; else InputError
        clear = fit_clear(hazy, read_photo(clear_path).rgb, hazy_path, clear_path)
        for name, fn in methods.items():
            if name not in warm:  # first call pays session/graph set-up: keep it out of the timing
                fn(hazy[:64, :64])
                warm.add(name)
            t0 = time.perf_counter()
            out = fn(hazy)
            dt = time.perf_counter() - t0
            mp = hazy.shape[0] * hazy.shape[1] / 1e6
            row = {
                "hazy": str(hazy_path),
                "clear": str(clear_path),
                **score(out, clear),
                "seconds": dt,
                "megapixels": mp,
            }
            r = results[name]
            r["images"].append(row)
            r["seconds"] += dt
            r["megapixels"] += mp
    summary = {}
    for name, r in results.items():
        mean = {k: float(np.mean([row[k] for row in r["images"]])) for k in METRICS}
        summary[name] = {
            "mean": mean,
            "seconds_per_megapixel": r["seconds"] / max(r["megapixels"], 1e-12),
            "images": r["images"],
        }
    return {"set": str(set_dir), "pairs": len(pairs), "methods": summary}


def format_table(report: dict, per_image: bool = False) -> str:
    """Plain-text table: one line per method (mean), optionally preceded by every image."""
    head = f"{'image':<28} {'method':<16} {'PSNR dB':>8} {'SSIM':>7} {'spectral':>9} {'s/MP':>8}"
    lines = [f"{report['set']}: {report['pairs']} pairs", head, "-" * len(head)]
    if per_image:
        names = list(report["methods"])
        for i in range(report["pairs"]):
            for name in names:
                row = report["methods"][name]["images"][i]
                lines.append(
                    f"{Path(row['hazy']).name:<28} {name:<16} {row['psnr']:8.2f} {row['ssim']:7.4f} "
                    f"{row['spectral']:9.4f} {row['seconds'] / row['megapixels']:8.3f}"
                )
        lines.append("-" * len(head))
    for name, m in report["methods"].items():
        mean = m["mean"]
        lines.append(
            f"{'mean':<28} {name:<16} {mean['psnr']:8.2f} {mean['ssim']:7.4f} {mean['spectral']:9.4f} "
            f"{m['seconds_per_megapixel']:8.3f}"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- no reference


def has_ground_truth(set_dir: str | Path) -> bool:
    """True when ``set_dir`` holds ground truth: a ``clear/`` (``GT/``, ...) folder or ``*_GT`` (``_clear``,
    ``_clean``) images. Such a folder is scored as pairs (:func:`evaluate`, strict pairing); any other
    folder of photos (real hazy photos, O-HAZE ``*_hazy`` frames alone) without reference
    (:func:`evaluate_noref`).

    Example:
        >>> has_ground_truth("/no/such/folder")
        Traceback (most recent call last):
        ...
        dehaze.errors.InputError: /no/such/folder: no such folder
    """
    files = list_images(set_dir, recursive=False)  # InputError for a missing folder or a file
    if any(p.is_dir() and p.name.lower() in CLEAR_DIRS for p in Path(set_dir).iterdir()):
        return True
    return any(_CLEAR_TAG.search(f.stem) for f in files)


def noref_photos(set_dir: str | Path) -> list[Path]:
    """The photos to score without reference: those of the ``hazy/`` folder if there is one, else the
    folder's own images; ground-truth images (``*_GT``, ``*_clear``, ``*_clean``) are left out.

    Raises:
        InputError: a missing folder, several hazy folders, or no photos.
    """
    root = Path(set_dir)
    list_images(root, recursive=False)  # InputError for a missing folder or a file
    hazy_dirs = sorted(p for p in root.iterdir() if p.is_dir() and p.name.lower() in HAZY_DIRS)
    if len(hazy_dirs) > 1:
        raise InputError(f"{root}: several hazy folders ({', '.join(p.name for p in hazy_dirs)}); keep one")
    folder = hazy_dirs[0] if hazy_dirs else root
    photos = [f for f in list_images(folder, recursive=False) if not _CLEAR_TAG.search(f.stem)]
    if not photos:
        raise InputError(f"{folder}: no photos to score ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return photos


def score_noref(hazy: np.ndarray, out: np.ndarray, hazy_fade: dict | None = None) -> dict[str, float]:
    """The no-reference scores of one restored photo against its input (HxWx3, float [0, 1] or integers).

    ``fade`` (with ``fade_df``, ``fade_dff``) of ``out``; ``clipped`` / ``clipped_black`` /
    ``clipped_white``: fractions of pixels newly clipped; ``brightness_ratio``: mean luma out / in;
    ``noise_amplification`` (with ``noise_input``, ``noise_output`` in grey levels) in flat areas.
    See :mod:`dehaze.metrics.noref`. ``hazy_fade``: the input's :func:`fade_details`, used when ``out``
    is the input itself (the ``hazy`` method).

    Example:
        >>> x = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
        >>> s = score_noref(x, x)
        >>> s["clipped"], s["brightness_ratio"], s["noise_amplification"]
        (0.0, 1.0, 1.0)
    """
    f = hazy_fade if hazy_fade is not None and out is hazy else fade_details(out)
    clip = newly_clipped(hazy, out)
    noise = noise_amplification(hazy, out)
    return {
        "fade": f["fade"],
        "fade_df": f["df"],
        "fade_dff": f["dff"],
        "clipped": clip["any"],
        "clipped_black": clip["black"],
        "clipped_white": clip["white"],
        "brightness_ratio": brightness_ratio(hazy, out),
        "noise_amplification": noise["ratio"],
        "noise_input": noise["input"],
        "noise_output": noise["output"],
    }


def _to_u8(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return rgb
    if rgb.dtype == np.uint16:
        return ((rgb.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return (np.clip(rgb, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _thumbnail(rgb: np.ndarray, width: int) -> np.ndarray:
    """``rgb`` resized (area averaging) to ``width`` px wide, uint8."""
    h, w = rgb.shape[:2]
    size = (width, max(1, round(h * width / w)))
    small = rgb if rgb.dtype in (np.uint8, np.uint16) else np.clip(rgb, 0.0, 1.0).astype(np.float32, copy=False)
    return _to_u8(cv2.resize(small, size, interpolation=cv2.INTER_AREA))


_FONT, _FONT_SCALE, _LABEL, _GAP = cv2.FONT_HERSHEY_SIMPLEX, 0.4, 16, 4


def _fit_text(text: str, width: int) -> str:
    """``text``, cut (ending in ``~``) to fit ``width`` px in the label font."""
    if cv2.getTextSize(text, _FONT, _FONT_SCALE, 1)[0][0] <= width:
        return text
    while len(text) > 1 and cv2.getTextSize(text + "~", _FONT, _FONT_SCALE, 1)[0][0] > width:
        text = text[:-1]
    return text + "~"


def contact_sheet(rows: list[list[tuple[str, np.ndarray]]]) -> np.ndarray:
    """One image of labelled thumbnails: a row per photo, a ``(label, HxWx3 uint8)`` cell per column.

    Cells of one row share a height (the same photo); a label band above each cell. White background.

    Example:
        >>> cells = [("hazy", np.zeros((30, 40, 3), np.uint8)), ("dcp", np.zeros((30, 40, 3), np.uint8))]
        >>> contact_sheet([cells, cells]).shape  # 2 x (16 label + 30 + 4 gap) + 4, 2 x (40 + 4) + 4
        (104, 92, 3)
    """
    if not rows or not all(rows):
        raise ValueError("a contact sheet needs at least one row of at least one cell")
    cols = max(len(r) for r in rows)
    cw = max(img.shape[1] for r in rows for _, img in r)
    heights = [max(img.shape[0] for _, img in r) + _LABEL + _GAP for r in rows]
    sheet = np.full((sum(heights) + _GAP, cols * (cw + _GAP) + _GAP, 3), 255, np.uint8)
    y = _GAP
    for r, rh in zip(rows, heights):
        for j, (label, img) in enumerate(r):
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(f"contact sheet cells must be HxWx3 uint8, got {img.shape} {img.dtype}")
            x = _GAP + j * (cw + _GAP)
            cv2.putText(sheet, _fit_text(label, cw - 2), (x + 1, y + _LABEL - 5), _FONT, _FONT_SCALE, (0, 0, 0), 1,
                        cv2.LINE_AA)
            sheet[y + _LABEL : y + _LABEL + img.shape[0], x : x + img.shape[1]] = img
        y += rh
    return sheet


def evaluate_noref(
    set_dir: str | Path,
    methods: dict[str, Callable[[np.ndarray], np.ndarray]],
    limit: int | None = None,
    progress: bool = True,
    sheet: str | Path | None = None,
    sheet_width: int = SHEET_WIDTH,
) -> dict:
    """Score every method on every photo of ``set_dir`` without ground truth (:func:`score_noref`).

    Photos are read with their integer pixels and handed to each method as :func:`dehaze.inference.restore_photo`
    does (a two-scale model keeps them integer; a 20 MP photo is never held as floats by the scores,
    which run in strips, FADE on a copy of at most :data:`dehaze.metrics.noref.FADE_SIDE` px).

    Args:
        set_dir: a folder of photos (see :func:`noref_photos`).
        methods: name -> callable ``HxWx3 [0,1] -> HxWx3 [0,1]``.
        limit: only the first ``limit`` photos.
        sheet: write a contact sheet there (PNG, or the format of its extension): a row per photo,
            columns hazy | each method but ``hazy``, labelled with the method and its FADE.
        sheet_width: thumbnail width in px.

    Returns:
        ``{"set", "mode": "no-reference", "photos": N, "fade_side", "sheet", "methods": {name: {"mean": {...},
        "median": {...}, "seconds_per_megapixel": s, "images": [{"hazy", <score_noref keys>, "seconds",
        "megapixels"}, ...]}}}``.

    Raises:
        InputError: no photos, an unreadable photo, or one FADE cannot score (too small, flat); the
            message names the photo (and the method).
    """
    if sheet_width < 16:
        raise ValueError(f"sheet_width must be at least 16 px, got {sheet_width}")
    photos = noref_photos(set_dir)[:limit]
    if not photos:
        raise InputError(f"{set_dir}: a limit of {limit} leaves no photo to score")
    results = {name: {"images": [], "seconds": 0.0, "megapixels": 0.0} for name in methods}
    rows: list[list[tuple[str, np.ndarray]]] = []
    warm = set()
    for path in tqdm(photos, desc="eval", unit="photo", file=sys.stderr, disable=not progress):
        photo = read_photo(path, as_float=False)  # integers: a quarter of the memory of floats
        hazy = photo.rgb
        try:
            hazy_fade = fade_details(hazy)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
        mp = hazy.shape[0] * hazy.shape[1] / 1e6
        row = [(f"{path.name}  FADE {hazy_fade['fade']:.2f}", _thumbnail(hazy, sheet_width))] if sheet else []
        for name, fn in methods.items():
            if name not in warm:  # first call pays session/graph set-up: keep it out of the timing
                fn(to_float(hazy[:64, :64]))
                warm.add(name)
            t0 = time.perf_counter()
            out = hazy if fn is identity else restore_photo(photo, fn).rgb
            dt = time.perf_counter() - t0
            try:
                scores = score_noref(hazy, out, hazy_fade)
            except InputError as exc:
                raise InputError(f"{path}: the output of {name}: {exc}") from None
            if sheet and fn is not identity:
                row.append((f"{name}  FADE {scores['fade']:.2f}", _thumbnail(out, sheet_width)))
            del out
            r = results[name]
            r["images"].append({"hazy": str(path), **scores, "seconds": dt, "megapixels": mp})
            r["seconds"] += dt
            r["megapixels"] += mp
        rows.append(row)
    summary = {}
    for name, r in results.items():
        summary[name] = {
            "mean": {k: float(np.mean([row[k] for row in r["images"]])) for k in NOREF_METRICS},
            "median": {k: float(statistics.median(row[k] for row in r["images"])) for k in NOREF_METRICS},
            "seconds_per_megapixel": r["seconds"] / max(r["megapixels"], 1e-12),
            "images": r["images"],
        }
    if sheet:
        write_photo(sheet, Photo(contact_sheet(rows), None, 8, False, "PNG"))
    return {
        "set": str(set_dir),
        "mode": "no-reference",
        "photos": len(photos),
        "fade_side": FADE_SIDE,
        "sheet": str(sheet) if sheet else None,
        "methods": summary,
    }


def format_noref_table(report: dict, per_image: bool = False) -> str:
    """Plain-text table of :func:`evaluate_noref`: mean and median lines per method, optionally every photo first.

    Columns: FADE (lower = less fog), newly clipped pixels in % (all, black, white), brightness ratio
    (output / input mean luma), noise amplification in flat areas (×) and seconds per megapixel.
    """
    head = (f"{'image':<28} {'method':<16} {'FADE':>6} {'clip %':>7} {'black %':>7} {'white %':>7} "
            f"{'bright':>6} {'noise×':>6} {'s/MP':>7}")

    def line(label: str, name: str, v: dict, spm: float) -> str:
        return (f"{label:<28} {name:<16} {v['fade']:6.3f} {100 * v['clipped']:7.2f} {100 * v['clipped_black']:7.2f} "
                f"{100 * v['clipped_white']:7.2f} {v['brightness_ratio']:6.3f} {v['noise_amplification']:6.2f} "
                f"{spm:7.3f}")

    lines = [f"{report['set']}: {report['photos']} photos, no reference (FADE on a copy of at most "
             f"{report['fade_side']} px; clip = pixels newly clipped)", head, "-" * len(head)]
    if per_image:
        for i in range(report["photos"]):
            for name, m in report["methods"].items():
                row = m["images"][i]
                lines.append(line(Path(row["hazy"]).name, name, row, row["seconds"] / row["megapixels"]))
        lines.append("-" * len(head))
    for stat in ("mean", "median"):
        for name, m in report["methods"].items():
            lines.append(line(stat, name, m[stat], m["seconds_per_megapixel"]))
    if report.get("sheet"):
        lines.append(f"contact sheet: {report['sheet']}")
    return "\n".join(lines)
