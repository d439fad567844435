"""Haze synthesis speed, the transmission distribution of each preset, and data-loading cost.

Prints ms per 256x256 sample (per depth prior and per preset, one thread, as in a DataLoader
worker), statistics of the transmission t each preset draws (per-image mean t and pixel t), and
ms per SyntheticHazeDataset item with and without the in-memory photo cache (interleaved rounds).

    .venv/bin/python benchmarks/haze_synthesis.py [--samples 400] [--size 256]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from dehaze.data import SyntheticHazeDataset
from dehaze.haze import DEPTH_PRIORS, haze_preset, synthesize_haze

CLEAN = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "clean"


def crops(n: int, size: int) -> list[np.ndarray]:
    """Centre crops of real photos (random noise images when the shared data is absent)."""
    files = sorted((CLEAN / "kodak24").glob("*.png")) + sorted((CLEAN / "bsds500" / "train").glob("*.jpg"))
    if not files:
        rng = np.random.default_rng(0)
        return [rng.random((size, size, 3), dtype=np.float32) for _ in range(n)]
    out = []
    for f in files[:n]:
        im = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
        if min(im.shape[:2]) < size:
            im = cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)
        y, x = (im.shape[0] - size) // 2, (im.shape[1] - size) // 2
        out.append(im[y : y + size, x : x + size].astype(np.float32) / 255)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    ims = crops(64, args.size)
    rng = np.random.default_rng(0)
    n = max(1, args.samples // 4)
    print(f"ms per {args.size}x{args.size} sample (1 thread, mixed ranges):")
    for name in DEPTH_PRIORS:
        t0 = time.perf_counter()
        for i in range(n):
            synthesize_haze(ims[i % len(ims)], rng, haze_preset("mixed"), prior=name)
        print(f"  prior {name:7s} {(time.perf_counter() - t0) / n * 1e3:6.2f} ms")
    for preset in ("indoor", "outdoor", "mixed"):
        means, pix, t0 = [], [], time.perf_counter()
        for i in range(args.samples):
            _, meta = synthesize_haze(ims[i % len(ims)], rng, haze_preset(preset), return_transmission=True)
            means.append(meta["mean_t"])
            pix.append(meta["transmission"].ravel()[::61])
        ms = (time.perf_counter() - t0) / args.samples * 1e3
        means, pix = np.array(means), np.concatenate(pix)
        hist = np.histogram(pix, bins=10, range=(0, 1))[0] / pix.size
        print(f"preset {preset:7s} {ms:6.2f} ms/sample")
        print(
            f"  per-image mean t: mean {means.mean():.3f}, pct 5/25/50/75/95 {np.percentile(means, [5, 25, 50, 75, 95]).round(2)}"
        )
        print(
            f"  pixel t: mean {pix.mean():.3f}, pct 1/5/50/95/99 {np.percentile(pix, [1, 5, 50, 95, 99]).round(3)}"
        )
        print(f"  share of pixels per t bin [0,.1)..[.9,1]: {hist.round(3)}")
    loading(args.size)


def loading(size: int, items: int = 100, rounds: int = 3) -> None:
    root = CLEAN / "bsds500"
    if not root.is_dir():
        print(f"(no {root}: data-loading measurement skipped)")
        return
    sets = {
        c: SyntheticHazeDataset([root], size, haze_preset("mixed"), 10**6, cache=c) for c in (False, True)
    }
    ms = {False: [], True: []}
    for r in range(rounds):
        for cache, ds in sets.items():
            t0 = time.perf_counter()
            for i in range(items):
                ds[r * items + i]
            ms[cache].append((time.perf_counter() - t0) / items * 1e3)
    plain, cached = np.median(ms[False]), np.median(ms[True])
    mb = sum(a.nbytes for a in sets[True].cache.values()) / 2**20
    print(
        f"SyntheticHazeDataset bsds500 ({len(sets[True].files)} photos), {size}px: {plain:.2f} ms/item uncached, "
        f"{cached:.2f} ms/item cached ({mb:.0f} MB), ratio {plain / cached:.2f}"
    )


if __name__ == "__main__":
    main()
