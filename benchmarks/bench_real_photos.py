"""Real hazy photos without ground truth: noise in flat areas, JPEG blocks, clipping, brightness, haze left.

    .venv/bin/python benchmarks/bench_real_photos.py [--model models/dehaze-default.onnx]
        [--dirs ../shared/data/real-hazy ../shared/data/real-hazy-large] [--t-floors 0.05 0.1 0.15 0.2]
        [--strengths 1] [--protect card off bound_radius=3,shadows=0.05 ...] [--save OUT_DIR]

For each photo, each inversion floor ``t_floor`` (J = (I - A) / max(t^s, t_floor) + A; default: the
card's), strength and clipping protection (``--protect``: ``card``, the model card's
``two_scale["protect"]``; ``off``, the plain inversion; or ``KEY=VALUE,...`` fields of
:class:`dehaze.twoscale.Protection`, ``bound_range=0:1``) the model's output is compared with the
photo itself (the network runs once per photo):

- ``flat noise x``: how much the noise grows in flat areas (the 30% of pixels with the lowest local
  gradient in the photo, mostly sky and fog): the median absolute Laplacian of the output over that
  of the photo there, each at least 0.1 grey level (the inversion multiplies it by up to 1/t_floor);
- ``block x``: JPEG blockiness growth, the mean step across 8-px block borders over the mean step
  inside blocks, output over photo, in the same flat areas (1 = no blocks made visible);
- ``white %`` / ``black %`` / ``clip %``: pixels newly clipped to white (any channel at or above
  254/255), to black (at or below 1/255), either (:func:`dehaze.metrics.newly_clipped`);
- ``bright``: mean luma of the output over that of the photo (:func:`dehaze.metrics.brightness_ratio`);
- ``haze left``: the mean dark channel (15 px) of the output over that of the photo (lower = more
  haze removed; DCP's is printed for scale).

Medians and means over the photos per setting. ``--save`` writes every output, to look at them at
full size.
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
from dehaze.metrics import brightness_ratio, newly_clipped
from dehaze.twoscale import NO_PROTECTION, Protection, apply_haze, fit_haze, working_copy


def grey(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=2).astype(np.float32)


def flat_mask(photo: np.ndarray) -> np.ndarray:
    g = cv2.GaussianBlur(grey(photo), (0, 0), 2)
    mag = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
    return mag <= np.quantile(mag, 0.3)


NOISE_FLOOR = 0.1 / 255  # 0.1 grey level: a flat area that JPEG left perfectly smooth has no noise to amplify


def noise(x: np.ndarray, mask: np.ndarray) -> float:
    lap = np.abs(cv2.Laplacian(grey(x), cv2.CV_32F, ksize=1))
    return max(float(np.median(lap[mask])), NOISE_FLOOR)


def blockiness(x: np.ndarray, mask: np.ndarray) -> float:
    g = grey(x)
    d = np.abs(np.diff(g, axis=1))  # step between column j and j+1
    m = mask[:, 1:] & mask[:, :-1]
    cols = np.arange(d.shape[1])
    border = (cols % 8) == 7
    a, b = d[:, border][m[:, border]], d[:, ~border][m[:, ~border]]
    return float(a.mean() / (b.mean() + 1e-6)) if a.size and b.size else 1.0


def protection_arg(text: str) -> tuple[str, Protection | None]:
    """``--protect``: ``card`` (None: the model card's), ``off``, or ``KEY=VALUE,...`` of :class:`Protection`.

    Example:
        >>> protection_arg("bound_radius=3,bound_range=0:1,shadows=0.05")[1].bound_range
        (0.0, 1.0)
    """
    if text == "card":
        return text, None
    if text == "off":
        return text, NO_PROTECTION
    fields = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        fields[key] = (tuple(float(v) for v in value.split(":")) if key == "bound_range"
                       else value if key == "bound_op" else float(value))
    try:
        return text, Protection(**fields)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="models/dehaze-default.onnx")
    p.add_argument("--dirs", nargs="+", default=["../shared/data/real-hazy", "../shared/data/real-hazy-large"])
    p.add_argument("--t-floors", type=float, nargs="+", help="default: the card's t_floor")
    p.add_argument("--strengths", type=float, nargs="+", default=[1.0])
    p.add_argument("--protect", type=protection_arg, nargs="+", default=[("card", None)],
                   help="card, off, or KEY=VALUE,... of dehaze.twoscale.Protection (default: card)")
    p.add_argument("--no-dcp", action="store_true", help="leave the dark channel prior out")
    p.add_argument("--save", type=Path)
    p.add_argument("--max-side", type=int, default=0, help="shrink photos to this long side first (0: full size)")
    args = p.parse_args()
    dh = Dehazer(args.model)
    if dh.two_scale is None:
        sys.exit(f"error: {args.model} is not a two-scale model")
    s = dh.two_scale
    floors = args.t_floors or [float(s.get("t_floor", s["t_min"]))]
    protects = [(name, dh.protection if p is None else p) for name, p in args.protect]
    files = sorted(f for d in args.dirs for f in Path(d).iterdir() if f.is_file())
    rows: dict[str, list[tuple[float, ...]]] = {}
    for f in files:
        photo = read_photo(f).rgb
        if args.max_side and max(photo.shape[:2]) > args.max_side:
            from dehaze.io import shrink_to_fit

            photo = shrink_to_fit(photo, args.max_side)
        mask = flat_mask(photo)
        n0, b0 = noise(photo, mask), blockiness(photo, mask)
        dark0 = float(dark_channel(photo).mean()) + 1e-6
        small = working_copy(photo, int(s["working_size"]))
        t, airlight = dh.raw_haze(small)
        outs = {}
        for pname, protect in protects:
            haze = fit_haze(small, t, airlight, photo.shape[:2], int(s["radius"]), float(s["eps"]),
                            float(s["t_min"]), protect=protect)
            for tf in floors:
                for st in args.strengths:
                    outs[f"t_floor {tf:g} s {st:g} {pname}"] = apply_haze(photo, haze, st, t_floor=tf, protect=protect)
        if not args.no_dcp:
            outs["dcp"] = dehaze_dcp(photo)
        for name, out in outs.items():
            c = newly_clipped(photo, out)
            r = (noise(out, mask) / n0, blockiness(out, mask) / b0, 100 * c["white"], 100 * c["black"],
                 100 * c["any"], brightness_ratio(photo, out), float(dark_channel(out).mean()) / dark0)
            rows.setdefault(name, []).append(r)
            print(f"{f.name:<22} {photo.shape[1]}x{photo.shape[0]:<5} {name:<30} flat noise x{r[0]:5.2f}  "
                  f"block x{r[1]:4.2f}  white {r[2]:5.2f}%  black {r[3]:5.2f}%  bright {r[5]:.3f}  "
                  f"haze left {r[6]:.2f}", flush=True)
            if args.save:
                write_photo(args.save / f"{f.stem}__{name.replace(' ', '_')}.jpg",
                            Photo(out, None, 8, False, "JPEG"), quality=92)
    head = (f"{'setting':<32} {'flat noise x':>12} {'block x':>8} {'white %':>8} {'black %':>8} {'clip %':>7} "
            f"{'bright':>7} {'haze left':>9}")
    for what, stat in (("medians", np.median), ("means", np.mean)):
        print(f"\n{what} over {len(files)} photos ({', '.join(args.dirs)}):\n{head}")
        for name, rs in rows.items():
            m = stat(np.array(rs), axis=0)
            print(f"{name:<32} {m[0]:12.2f} {m[1]:8.2f} {m[2]:8.2f} {m[3]:8.2f} {m[4]:7.2f} {m[5]:7.3f} {m[6]:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
