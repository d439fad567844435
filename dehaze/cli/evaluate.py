"""``dehaze eval``: score models and baselines on a paired folder, side by side.

    dehaze eval SET_DIR [--method model,dcp,hazy] [--model FILE] [--json] [--limit N]

Pairs come from :func:`dehaze.data.find_pairs` (RESIDE ``hazy/1400_1.png`` <-> ``clear/1400.png``,
``hazy/0051_0.8_0.2.jpg`` <-> ``clear/0051.png``, same names, ``*_hazy`` / ``*_GT``). For every
method: PSNR (dB), SSIM and spectral distance per image and their means, and the runtime in
seconds per megapixel (after one warm-up call). ``hazy`` is the identity: the input's own score.
A clear image slightly larger than its hazy one is centre-cropped (RESIDE SOTS indoor: 640x480
clear for 620x460 hazy), as in training.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dehaze.errors import ConfigError
from dehaze.inference import get_method
from dehaze.io import read_photo

METRICS = ("psnr", "ssim", "spectral")


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="score models and baselines on hazy/clear pairs",
        description=(
            "PSNR, SSIM and spectral distance per image and mean, and seconds per megapixel, for each "
            "method on a paired folder (hazy/ + clear/ or GT/, or *_hazy / *_GT files)."
        ),
    )
    p.add_argument("set_dir", metavar="SET_DIR", help="paired folder, e.g. ../shared/data/sots-dev/indoor")
    p.add_argument(
        "--method", default="model", help="comma-separated: model, dcp, hazy, or model files (default model)"
    )
    p.add_argument("--model", metavar="FILE", help="model for 'model' (default: models/dehaze-default.onnx)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--per-image", action="store_true", help="also list every image in the table (always in --json)"
    )
    p.add_argument("--limit", type=int, metavar="N", help="only the first N pairs")
    p.add_argument("--tile", type=int, default=512, metavar="N", help="tile side for the model (512)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (auto)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: all available cores)")
    p.set_defaults(run=run)
    return p


def score(out: np.ndarray, clear: np.ndarray) -> dict[str, float]:
    """PSNR, SSIM and spectral distance of one restored image against its ground truth (HxWx3 in [0,1])."""
    import torch  # here, not at module level: `dehaze --help` imports every sub-command

    from dehaze.metrics import psnr, spectral_distance, ssim

    def tensor(rgb: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].float()

    x, y = tensor(np.clip(out, 0.0, 1.0)), tensor(clear)
    return {
        "psnr": float(psnr(x, y)[0]),
        "ssim": float(ssim(x, y)[0]),
        "spectral": float(spectral_distance(x, y)[0]),
    }


def evaluate(set_dir: str | Path, methods: dict, limit: int | None = None, progress: bool = True) -> dict:
    """Score every method on every pair of ``set_dir``.

    Args:
        set_dir: a paired folder (see :func:`dehaze.data.find_pairs`).
        methods: name -> callable ``HxWx3 [0,1] -> HxWx3 [0,1]``.
        limit: only the first ``limit`` pairs.

    Returns:
        ``{"set": ..., "pairs": N, "methods": {name: {"mean": {...}, "seconds_per_megapixel": s,
        "images": [{"hazy", "clear", "psnr", "ssim", "spectral", "seconds", "megapixels"}, ...]}}}``.
    """
    from dehaze.data import find_pairs, fit_clear

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


def run(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.method.split(",") if n.strip()]
    if not names:
        raise ConfigError("--method is empty; use e.g. model,dcp,hazy")
    if len(set(names)) != len(names):
        raise ConfigError(f"--method names a method twice: {args.method}")
    kwargs = dict(device=args.device, tile=args.tile, threads=args.threads)
    methods = {n: get_method(n, args.model, **kwargs) for n in names}
    report = evaluate(args.set_dir, methods, limit=args.limit, progress=not args.json)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_table(report, per_image=args.per_image))
    return 0
