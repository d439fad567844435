"""Scale consistency of two-scale dehazing: the same scenes at 1x, 2x and 4x their pixel size.

    .venv/bin/python benchmarks/bench_two_scale.py --sets ../shared/data/sots-dev/outdoor \\
        ../shared/data/sots-dev/indoor --scales 1 2 4 --limit 30 \\
        [--working-sizes 384 512 768] [--filters 8:1 4:0.01] [--protect card off KEY=VALUE,...]
        [--baseline old-tiled-model.onnx]

The selection set used to choose the defaults (45 pairs, about 1 MP each, never trained on: every
fourth photo of ``clean/sun-hays80`` and ``clean/urban100`` in name order, outdoor haze, seed 0):

    .venv/bin/python benchmarks/bench_two_scale.py --make-selection /tmp/select  # then --sets /tmp/select

Each pair of each paired set is upscaled by the benchmark itself (bicubic, hazy and clear alike:
what a phone photo of the same scene looks like to the network) and restored by the model at each
working size, guided-filter setting (``RADIUS:EPS`` in working-size pixels; default: the
card's) and clipping protection (``--protect``, as in ``bench_real_photos.py``: ``card``, ``off`` or
``KEY=VALUE,...`` of :class:`dehaze.twoscale.Protection`; default: the card's), and optionally by a
baseline model run as it always has been (one pass, 512-px tiles).
Prints mean PSNR / SSIM per set, scale and configuration, and the 4x-minus-1x gap. Use a
selection set (synthetic pairs from held-out clean photos, ``dehaze synth``) to choose settings,
and sots-dev only to report them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from dehaze.evaluation import score
from dehaze.inference import Dehazer
from dehaze.io import read_photo
from dehaze.pairs import find_pairs, fit_clear, read_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_real_photos import protection_arg  # noqa: E402  (the one --protect syntax)

HELD_OUT = Path(__file__).resolve().parents[1] / "training" / "splits" / "heldout-v1.txt"  # never trained on


def make_selection(out: Path, clean_root: Path = Path("../shared/data/clean")) -> None:
    """Synthetic pairs from the held-out photos (:data:`HELD_OUT`; ``dehaze synth``, outdoor preset,
    seed 0) in ``out``."""
    from dehaze.cli import main as dehaze

    photos = out / "clean"
    photos.mkdir(parents=True, exist_ok=True)
    for rel in read_split(HELD_OUT):
        f = clean_root / rel
        link = photos / rel.replace("/", "_")
        if not link.exists():
            link.symlink_to(f.resolve())
    code = dehaze(["synth", str(photos), "-o", str(out / "pairs"), "--preset", "outdoor", "--seed", "0"])
    if code:
        sys.exit(code)
    print(f"selection set: {out / 'pairs'}")


def upscale(rgb: np.ndarray, k: int) -> np.ndarray:
    if k == 1:
        return rgb
    h, w = rgb.shape[:2]
    return np.clip(cv2.resize(rgb, (w * k, h * k), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def configs(args: argparse.Namespace) -> dict:
    """name -> Dehazer, one per working size x filter setting x protection (and the baseline)."""
    out = {}
    for ws in args.working_sizes or [None]:
        for f in args.filters or [None]:
            for pname, protect in args.protect:
                d = Dehazer(args.model, working_size=ws, threads=args.threads)
                if d.two_scale is None:
                    sys.exit(f"error: {args.model} is not a two-scale model (re-export it with 'dehaze export')")
                if f:
                    r, e = f.split(":")
                    d.two_scale = {**d.two_scale, "radius": int(r), "eps": float(e)}
                if protect is not None:  # not the card's
                    d.two_scale = {**d.two_scale, "protect": protect.settings()}
                s = d.two_scale
                name = f"ws{s['working_size']} r{s['radius']} eps{s['eps']:g}"
                out[name if len(args.protect) == 1 and pname == "card" else f"{name} {pname}"] = d
    if args.baseline:
        out["baseline (tiled)"] = Dehazer(args.baseline, tile=512, threads=args.threads)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="models/dehaze-default.onnx", help="a two-scale model")
    p.add_argument("--sets", nargs="+", help="paired folders")
    p.add_argument("--make-selection", type=Path, metavar="DIR", help="build the selection set in DIR and exit")
    p.add_argument("--scales", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--limit", type=int, help="first N pairs of each set")
    p.add_argument("--working-sizes", type=int, nargs="+")
    p.add_argument("--filters", nargs="+", metavar="RADIUS:EPS")
    p.add_argument("--protect", type=protection_arg, nargs="+", default=[("card", None)],
                   help="card, off, or KEY=VALUE,... of dehaze.twoscale.Protection (default: card)")
    p.add_argument("--baseline", help="an older model run tiled, for comparison")
    p.add_argument("--threads", type=int)
    args = p.parse_args()
    if args.make_selection:
        make_selection(args.make_selection)
        return 0
    if not args.sets:
        p.error("--sets is required")
    methods = configs(args)
    rows = []
    for set_dir in args.sets:
        pairs = find_pairs(set_dir)[: args.limit]
        for k in args.scales:
            scores = {name: [] for name in methods}
            for hazy_path, clear_path in pairs:
                hazy = read_photo(hazy_path).rgb
                clear = fit_clear(hazy, read_photo(clear_path).rgb, hazy_path, clear_path)
                hazy, clear = upscale(hazy, k), upscale(clear, k)
                for name, fn in methods.items():
                    s = score(fn(hazy), clear)
                    scores[name].append((s["psnr"], s["ssim"]))
            first = np.array(next(iter(scores.values())))
            for name, per_pair in scores.items():
                per_pair = np.array(per_pair)
                psnr, ssim = per_pair.mean(axis=0)
                rows.append((Path(set_dir).name, k, name, psnr, ssim, len(pairs)))
                d = per_pair - first  # paired differences against the first configuration, and their standard error
                se = d[:, 0].std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0
                vs = f"  {d[:, 0].mean():+.3f} dB (s.e. {se:.3f}), SSIM {d[:, 1].mean():+.4f} vs the first" if name != next(iter(scores)) else ""
                print(f"{Path(set_dir).name:>10} {k}x  {name:<24} {psnr:6.3f} dB  SSIM {ssim:.4f}  ({len(pairs)} pairs){vs}",
                      flush=True)
    print("\ngap (largest scale minus 1x), PSNR dB:")
    for set_dir in args.sets:
        name_set = Path(set_dir).name
        for name in methods:
            by_k = {r[1]: r[3] for r in rows if r[0] == name_set and r[2] == name}
            if 1 in by_k and len(by_k) > 1:
                top = max(by_k)
                print(f"{name_set:>10}  {name:<24} {top}x - 1x = {by_k[top] - by_k[1]:+.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
