"""Score restoration methods on a paired folder: PSNR, SSIM, spectral distance and runtime.

The library behind ``dehaze eval`` (:mod:`dehaze.cli.evaluate`), the model card's evaluation
(``dehaze export --eval``) and the training reports. Pairs come from :func:`dehaze.pairs.find_pairs`
(RESIDE ``hazy/1400_1.png`` <-> ``clear/1400.png``, ``hazy/0051_0.8_0.2.jpg`` <-> ``clear/0051.png``,
same names, ``*_hazy`` / ``*_GT``); a clear image slightly larger than its hazy one is centre-cropped
(RESIDE SOTS indoor: 640x480 clear for 620x460 hazy), as in training. Metrics are the NumPy ones of
:mod:`dehaze.metrics`: nothing here imports torch, so it runs in the base install.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dehaze.io import read_photo
from dehaze.metrics import psnr_np, spectral_distance_np, ssim_np
from dehaze.pairs import find_pairs, fit_clear

__all__ = ["METRICS", "evaluate", "format_table", "score"]

METRICS = ("psnr", "ssim", "spectral")


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
