#!/usr/bin/env python
"""How much of a model's error comes from its atmospheric light? A diagnostic for ASM-head models.

RESIDE SOTS outdoor names its hazy images ``ID_A_beta`` (``0001_0.8_0.2.jpg``): the airlight A
that synthesised them is known. Other synthetic pairs (SOTS indoor) get A fitted from the pair
(:func:`fit_airlight`; it gives 1.000 on every sots-dev indoor pair). For every pair this restores the photo twice with the same model,
once with the model's own estimate of A and once with the true A forced in (``Dehazer(...,
airlight=)``), and prints the mean estimated A against the true one and both PSNRs. A large gap
between the two PSNRs means the atmospheric light, not the transmission map, is what to fix.

    python training/airlight_report.py models/dehaze-default.onnx ../shared/data/sots-dev/outdoor
    python training/airlight_report.py models/dehaze-default.onnx ../shared/data/sots-dev/indoor
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from dehaze.data import find_pairs, fit_clear
from dehaze.errors import DehazeError
from dehaze.evaluation import score
from dehaze.inference import Dehazer
from dehaze.io import read_photo


def true_airlight(name: str) -> float | None:
    """A from a RESIDE outdoor name ``ID_A_beta``; None when the name does not carry one."""
    parts = name.split("_")
    try:
        return float(parts[1]) if len(parts) == 3 and 0 < float(parts[1]) <= 1 else None
    except ValueError:
        return None


def fit_airlight(hazy: np.ndarray, clear: np.ndarray, step: int = 3) -> float:
    """The grey airlight A that best explains a synthetic pair by I = J·t + A·(1 − t).

    For each candidate A in [0.5, 1] (steps of 0.001) every pixel gets its least-squares t (over
    the three channels, clipped to [0, 1]); the A with the smallest mean squared residual wins.

    Args:
        hazy, clear: HxWx3 float arrays in [0, 1] of the same size.
        step: use every ``step``-th pixel.

    Example:
        >>> rng = np.random.default_rng(0); J = rng.random((32, 32, 3)); t = rng.uniform(0.3, 0.9, (32, 32, 1))
        >>> round(fit_airlight(J * t + 0.85 * (1 - t), J), 3)
        0.85
    """
    i = np.asarray(hazy, np.float64).reshape(-1, 3)[::step]
    j = np.asarray(clear, np.float64).reshape(-1, 3)[::step]
    best, best_err = 1.0, np.inf
    for a in np.arange(0.5, 1.0005, 0.001):
        di, dj = i - a, j - a
        t = np.clip((di * dj).sum(1) / np.maximum((dj * dj).sum(1), 1e-8), 0, 1)
        err = float(((di - t[:, None] * dj) ** 2).mean())
        if err < best_err:
            best, best_err = float(a), err
    return best


def airlight_report(model: str, set_dir: str, limit: int | None = None, tile: int = 512) -> dict:
    """Per-pair estimated vs true A and PSNR with each; means under ``"mean"``."""
    dh = Dehazer(model, tile=tile)
    if not dh.shares_airlight:
        raise DehazeError(f"{model} has no ASM head: it does not estimate an atmospheric light")
    pairs = find_pairs(set_dir)[:limit]
    if not pairs:
        raise DehazeError(f"{set_dir}: no hazy/clear pairs")
    rows = []
    for hp, cp in pairs:
        hazy = read_photo(hp).rgb
        clear = fit_clear(hazy, read_photo(cp).rgb, hp, cp)
        a, source = true_airlight(hp.stem), "name"
        if a is None:
            a, source = round(fit_airlight(hazy, clear), 3), "fit"
        est = dh.estimate_airlight(hazy)
        rows.append({
            "hazy": hp.name, "A": a, "A_source": source, "A_est": [round(float(v), 4) for v in est],
            "psnr": score(dh(hazy, airlight=est), clear)["psnr"],
            "psnr_true_A": score(dh(hazy, airlight=np.full(3, a, np.float32)), clear)["psnr"],
        })
    err = np.array([np.mean(r["A_est"]) - r["A"] for r in rows])
    mean = {
        "pairs": len(rows), "A_bias": float(err.mean()), "A_mae": float(np.abs(err).mean()),
        "psnr": float(np.mean([r["psnr"] for r in rows])),
        "psnr_true_A": float(np.mean([r["psnr_true_A"] for r in rows])),
    }
    return {"model": str(model), "set": str(set_dir), "mean": mean, "images": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="ONNX model or training checkpoint with an ASM head")
    ap.add_argument("set_dir", help="paired folder; A from RESIDE outdoor names (ID_A_beta), else fitted")
    ap.add_argument("--limit", type=int, default=None, help="only the first N pairs")
    ap.add_argument("--tile", type=int, default=512, help="tile side, as dehaze eval (0: whole image)")
    ap.add_argument("--json", action="store_true", help="print everything as JSON")
    args = ap.parse_args(argv)
    try:
        rep = airlight_report(args.model, args.set_dir, args.limit, args.tile)
    except DehazeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rep, indent=1))
        return 0
    m = rep["mean"]
    print(f"{rep['set']}: {m['pairs']} pairs")
    print(f"estimated A - true A: mean {m['A_bias']:+.3f}, mean |.| {m['A_mae']:.3f}")
    print(f"PSNR with the model's A {m['psnr']:.2f} dB, with the true A {m['psnr_true_A']:.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
