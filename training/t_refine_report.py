#!/usr/bin/env python
"""Score guided-filter settings for an ASM model's transmission map without exporting each one.

For every pair the generator (one checkpoint, or the average of several snapshots as ``dehaze
export`` makes it) runs once: A is estimated on the photo shrunk to 512 px, as the runtime does,
and t on the whole photo. Each ``RADIUS:EPS`` setting then refines t
(:func:`dehaze.nets.unet.refine_transmission`), restores J = (I − A)/t + A and is scored like
``dehaze eval`` (PSNR, SSIM, spectral distance). ``0`` is the network's own t. Photos are not
tiled, so the scores can differ from ``dehaze eval`` of the export by a few hundredths of a dB.

    python training/t_refine_report.py runs/ft-out/snapshot-000{0200,0300,0400,0500,0600}.pt \\
        runs/ft-out-s1/snapshot-000{0200,0300,0400,0500,0600}.pt \\
        --sets ../shared/data/sots-dev/outdoor ../shared/data/sots-dev/indoor --filters 0 8:0.001 8:1 16:1

Then ship a setting with ``dehaze export ... --t-refine RADIUS --t-refine-eps EPS``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from dehaze.data import find_pairs, fit_clear
from dehaze.errors import ConfigError, InputError, run_reporting_errors
from dehaze.evaluation import score
from dehaze.inference import DEFAULT_TILE
from dehaze.io import read_photo, shrink_to_fit
from dehaze.nets import average_generators, load_generator
from dehaze.nets.unet import refine_transmission


def parse_filter(text: str) -> tuple[int, float]:
    """``"0"`` (no filter) or ``"RADIUS:EPS"`` -> (radius, eps).

    Example:
        >>> parse_filter("8:0.1"), parse_filter("0")
        ((8, 0.1), (0, 0.0))
    """
    try:
        if text.strip() == "0":
            return 0, 0.0
        r, e = text.split(":")
        radius, eps = int(r), float(e)
    except ValueError:
        raise ConfigError(f"filter {text!r}: expected 0 or RADIUS:EPS, e.g. 8:0.1") from None
    if radius < 1 or not eps > 0:
        raise ConfigError(f"filter {text!r}: the radius must be >= 1 and eps > 0")
    return radius, eps


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].float()


def t_refine_report(checkpoints: list[str], sets: list[str], filters: list[tuple[int, float]]) -> dict:
    """Mean PSNR, SSIM and spectral distance per set and filter setting (see the module docstring)."""
    G, _ = (load_generator(checkpoints[0]) if len(checkpoints) == 1 else average_generators(checkpoints))
    if getattr(G, "head", None) != "asm":
        raise ConfigError("the model has no ASM head: there is no transmission map to refine")
    G.set_t_refine(0)  # the network's own t; the settings below are applied on top
    report = {}
    for set_dir in sets:
        pairs = find_pairs(set_dir)
        if not pairs:
            raise InputError(f"{set_dir}: no hazy/clear pairs found")
        scores: dict[str, list[dict]] = {}
        for hazy_path, clear_path in pairs:
            hazy = read_photo(hazy_path).rgb
            clear = fit_clear(hazy, read_photo(clear_path).rgb, hazy_path, clear_path)
            x = _tensor(hazy)
            with torch.inference_mode():  # A from the photo shrunk to one tile, as Dehazer.estimate_airlight
                A = G(_tensor(shrink_to_fit(hazy, DEFAULT_TILE)) * 2 - 1, return_asm=True)[2].flatten(1)
                _, t, A = G(x * 2 - 1, return_asm=True, airlight=A)
                for radius, eps in filters:
                    tt = t if radius == 0 else refine_transmission(x, t, radius, eps, G.t_min)
                    J = ((x - A) / tt + A).clamp(0, 1)[0].numpy().transpose(1, 2, 0)
                    key = "0" if radius == 0 else f"{radius}:{eps:g}"
                    scores.setdefault(key, []).append(score(J, clear))
        report[Path(set_dir).name] = {
            key: {m: float(np.mean([s[m] for s in rows])) for m in ("psnr", "ssim", "spectral")}
            for key, rows in scores.items()
        }
    return report


def format_report(report: dict) -> str:
    sets = list(report)
    head = f"{'filter':>10} " + " ".join(f"{s + ' PSNR / SSIM / spectral':>36}" for s in sets)
    lines = [head, "-" * len(head)]
    for key in report[sets[0]]:
        cells = [f"{report[s][key]['psnr']:12.3f} {report[s][key]['ssim']:10.4f} {report[s][key]['spectral']:12.4f}"
                 for s in sets]
        lines.append(f"{key:>10} " + " ".join(f"{c:>36}" for c in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", nargs="+", help="training checkpoint(s) of an ASM model; several are averaged")
    p.add_argument("--sets", nargs="+", required=True, metavar="SET_DIR", help="paired folders to score on")
    p.add_argument("--filters", nargs="+", default=["0", "4:1", "8:0.001", "8:0.1", "8:1", "16:1"],
                   metavar="RADIUS:EPS", help="guided-filter settings; 0 = the network's own t")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    args = p.parse_args(argv)

    def run() -> int:
        report = t_refine_report(args.checkpoint, args.sets, [parse_filter(f) for f in args.filters])
        print(json.dumps(report, indent=1) if args.json else format_report(report))
        return 0

    return run_reporting_errors(run)


if __name__ == "__main__":
    sys.exit(main())
