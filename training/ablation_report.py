#!/usr/bin/env python
"""Score the SSD ablation runs side by side and plot their spectra against the ground truth.

For every run folder (``runs/ablation/<mode>``) the final EMA generator (``last.pt``: no
checkpoint is picked by its validation score, so the numbers are not tuned on the test pairs)
is run with :func:`dehaze.cli.evaluate.evaluate` on each paired set together with the DCP
baseline and the hazy input. Writes ``results.json``, ``table.md`` and ``spectra.png``
(mean log-magnitude azimuthal spectrum of the outputs and of the ground truth, and their
difference) into ``--out``.

    python training/ablation_report.py --runs runs/ablation --modes l1,pix2pix,ssd,ssd-phase \\
        --sets ../shared/data/sots-dev/outdoor ../shared/data/sots-dev/indoor --out docs/ablation
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dehaze.cli.evaluate import evaluate
from dehaze.data import find_pairs, fit_clear
from dehaze.errors import DehazeError
from dehaze.inference import get_method
from dehaze.io import read_photo
from dehaze.spectral import azimuthal_spectrum

CURVE_BINS = 96  # spectra of different image sizes are resampled to this many radius bins


def curve(rgb: np.ndarray) -> np.ndarray:
    """Mean log |F| per radius bin (unnormalised), resampled over normalised frequency."""
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].float() * 2 - 1
    v = azimuthal_spectrum(x, normalize=False)
    return F.interpolate(v[:, None], size=CURVE_BINS, mode="linear", align_corners=True)[0, 0].numpy()


class Recorder:
    """Wraps a method ``HxWx3 -> HxWx3`` and keeps the spectrum curve of each full-size output."""

    def __init__(self, fn):
        self.fn, self.curves = fn, []

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        out = self.fn(rgb)
        if min(rgb.shape[:2]) > 64:  # skip evaluate()'s 64x64 warm-up call
            self.curves.append(curve(np.clip(out, 0, 1)))
        return out


def ground_truth_curves(set_dir: Path, limit: int | None = None) -> np.ndarray:
    rows = []
    for hp, cp in find_pairs(set_dir)[:limit]:
        hazy = read_photo(hp).rgb
        rows.append(curve(fit_clear(hazy, read_photo(cp).rgb, hp, cp)))
    return np.mean(rows, axis=0)


def plot(curves: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(curves)
    fig, axes = plt.subplots(2, len(sets), figsize=(6 * len(sets), 7), squeeze=False, sharex=True)
    f = np.linspace(0, 1, CURVE_BINS)
    for j, name in enumerate(sets):
        gt = curves[name]["ground truth"]
        for label, c in curves[name].items():
            style = dict(color="black", lw=2) if label == "ground truth" else dict(lw=1.2)
            if label in ("hazy", "dcp"):
                style["ls"] = "--"
            axes[0, j].plot(f, c, label=label, **style)
            if label != "ground truth":
                axes[1, j].plot(f, c - gt, label=label, **style)
        axes[1, j].axhline(0, color="black", lw=1)
        axes[0, j].set(title=name, ylabel="mean log |F|")
        axes[1, j].set(xlabel="radius (fraction of the largest radius)", ylabel="output − ground truth")
        axes[0, j].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=Path("runs/ablation"))
    p.add_argument("--modes", default="l1,pix2pix,ssd,ssd-phase")
    p.add_argument("--sets", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, default=Path("docs/ablation"))
    p.add_argument("--checkpoint", default="last.pt", help="checkpoint file name in each run folder")
    p.add_argument("--baselines", default="dcp,hazy")
    p.add_argument("--limit", type=int, help="only the first N pairs of each set (quick checks)")
    p.add_argument("--threads", type=int, help="CPU threads per model (default: all available cores)")
    args = p.parse_args()
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        modes = [m for m in args.modes.split(",") if m]
        report, curves = {}, {}
        for set_dir in args.sets:
            methods = {m: Recorder(get_method("model", args.runs / m / args.checkpoint, threads=args.threads))
                       for m in modes}
            methods.update({b: Recorder(get_method(b)) for b in args.baselines.split(",") if b})
            name = set_dir.name
            print(f"evaluating {len(methods)} methods on {set_dir}", file=sys.stderr)
            report[name] = evaluate(set_dir, methods, limit=args.limit, progress=True)
            curves[name] = {"ground truth": ground_truth_curves(set_dir, args.limit)}
            curves[name].update({k: np.mean(r.curves, axis=0) for k, r in methods.items()})
            for k in report[name]["methods"]:  # keep the JSON small: means only
                report[name]["methods"][k].pop("images")
    except DehazeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    (args.out / "results.json").write_text(json.dumps(report, indent=2))
    plot(curves, args.out / "spectra.png")
    table = markdown_table(report)
    (args.out / "table.md").write_text(table + "\n")
    print(table)
    return 0


def markdown_table(report: dict) -> str:
    sets = list(report)
    head = "| method | " + " | ".join(f"{s} PSNR dB | {s} SSIM | {s} spectral dist." for s in sets) + " |"
    lines = [head, "|---" * (1 + 3 * len(sets)) + "|"]
    for m in report[sets[0]]["methods"]:
        cells = []
        for s in sets:
            mean = report[s]["methods"][m]["mean"]
            cells += [f"{mean['psnr']:.2f}", f"{mean['ssim']:.3f}", f"{mean['spectral']:.4f}"]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
