"""Real hazy photos without ground truth: noise in flat areas, JPEG blocks, clipping and haze left.

    .venv/bin/python benchmarks/bench_real_photos.py [--model models/dehaze-default.onnx]
        [--dirs ../shared/data/real-hazy ../shared/data/real-hazy-large] [--t-floors 0.05 0.1 0.15 0.2]
        [--strengths 1] [--save OUT_DIR]

For each photo and each inversion floor ``t_floor`` (J = (I - A) / max(t^s, t_floor) + A) the model's
output is compared with the photo itself:

- ``flat noise x``: how much the noise grows in flat areas (the 30% of pixels with the lowest local
  gradient in the photo, mostly sky and fog): the median absolute Laplacian of the output over that
  of the photo there (the inversion multiplies it by up to 1/t_floor);
- ``block x``: JPEG blockiness growth, the mean step across 8-px block borders over the mean step
  inside blocks, output over photo, in the same flat areas (1 = no blocks made visible);
- ``clip %``: pixels newly at white or black (any channel);
- ``haze left``: the mean dark channel (15 px) of the output over that of the photo (lower = more
  haze removed; DCP's is printed for scale).

Medians over the photos per setting. ``--save`` writes every output, to look at them at full size.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from dehaze.classical import dark_channel, dehaze_dcp
from dehaze.inference import Dehazer
from dehaze.io import Photo, read_photo, write_photo
from dehaze.twoscale import apply_haze


def grey(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=2).astype(np.float32)


def flat_mask(photo: np.ndarray) -> np.ndarray:
    g = cv2.GaussianBlur(grey(photo), (0, 0), 2)
    mag = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
    return mag <= np.quantile(mag, 0.3)


def noise(x: np.ndarray, mask: np.ndarray) -> float:
    lap = np.abs(cv2.Laplacian(grey(x), cv2.CV_32F, ksize=1))
    return float(np.median(lap[mask])) + 1e-6


def blockiness(x: np.ndarray, mask: np.ndarray) -> float:
    g = grey(x)
    d = np.abs(np.diff(g, axis=1))  # step between column j and j+1
    m = mask[:, 1:] & mask[:, :-1]
    cols = np.arange(d.shape[1])
    border = (cols % 8) == 7
    a, b = d[:, border][m[:, border]], d[:, ~border][m[:, ~border]]
    return float(a.mean() / (b.mean() + 1e-6)) if a.size and b.size else 1.0


def clipped(x: np.ndarray) -> float:
    return float(((x <= 0.0) | (x >= 1.0)).any(axis=2).mean())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="models/dehaze-default.onnx")
    p.add_argument("--dirs", nargs="+", default=["../shared/data/real-hazy", "../shared/data/real-hazy-large"])
    p.add_argument("--t-floors", type=float, nargs="+", default=[0.05, 0.1, 0.15, 0.2])
    p.add_argument("--strengths", type=float, nargs="+", default=[1.0])
    p.add_argument("--save", type=Path)
    p.add_argument("--max-side", type=int, default=0, help="shrink photos to this long side first (0: full size)")
    args = p.parse_args()
    dh = Dehazer(args.model)
    if dh.two_scale is None:
        sys.exit(f"error: {args.model} is not a two-scale model")
    files = sorted(f for d in args.dirs for f in Path(d).iterdir() if f.is_file())
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    for f in files:
        photo = read_photo(f).rgb
        if args.max_side and max(photo.shape[:2]) > args.max_side:
            from dehaze.io import shrink_to_fit

            photo = shrink_to_fit(photo, args.max_side)
        mask = flat_mask(photo)
        n0, b0, c0 = noise(photo, mask), blockiness(photo, mask), clipped(photo)
        dark0 = float(dark_channel(photo).mean()) + 1e-6
        haze = dh.estimate(photo)
        outs = {f"t_floor {tf:g} s {s:g}": apply_haze(photo, haze, s, t_floor=tf)
                for tf in args.t_floors for s in args.strengths}
        outs["dcp"] = dehaze_dcp(photo)
        for name, out in outs.items():
            r = (noise(out, mask) / n0, blockiness(out, mask) / b0, 100 * (clipped(out) - c0),
                 float(dark_channel(out).mean()) / dark0)
            rows.setdefault(name, []).append(r)
            print(f"{f.name:<22} {photo.shape[1]}x{photo.shape[0]:<5} {name:<20} flat noise x{r[0]:5.2f}  "
                  f"block x{r[1]:4.2f}  clip {r[2]:+5.1f}%  haze left {r[3]:.2f}", flush=True)
            if args.save:
                write_photo(args.save / f"{f.stem}__{name.replace(' ', '_')}.jpg",
                            Photo(out, None, 8, False, "JPEG"), quality=92)
    print(f"\nmedians over {len(files)} photos ({', '.join(args.dirs)}):")
    print(f"{'setting':<22} {'flat noise x':>12} {'block x':>8} {'clip %':>7} {'haze left':>9}")
    for name, rs in rows.items():
        m = np.median(np.array(rs), axis=0)
        print(f"{name:<22} {m[0]:12.2f} {m[1]:8.2f} {m[2]:+7.1f} {m[3]:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
