#!/usr/bin/env python
"""The SSD ablation of the dehazer (docs/ablation.md): run its arms over seeds, then report them.

``run`` trains ``training/configs/ablation/<arm>.yaml`` once per seed into ``runs/ablation/<arm>-s<seed>``
(resuming an interrupted run, skipping a finished one), ``--jobs`` runs at a time, one thread each.
``report`` reads each run's last validation (its final EMA generator: nothing is picked by a score)
and writes mean ± standard deviation over seeds per arm, paired differences across seeds against
the control, the mean output spectra with seed bands and C's accuracy over training.

    python training/ablation.py run --arms l1 pix2pix pix2pix-half ssd ssd-mlp ssd-phase ssd-full --seeds 0 1 2 --jobs 2
    python training/ablation.py report --out docs/ablation --reference models/dehaze-default/stage1/stats.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "configs" / "ablation"
ARMS = ("pix2pix-half", "ssd", "ssd-phase", "pix2pix", "ssd-mlp", "l1", "ssd-full")  # in the order they run
CONTROL = "pix2pix-half"  # the adversarial weight D has inside D_ss, without C
# (validation key, label, higher is better)
METRICS = (("heldout/psnr", "held-out PSNR", True), ("heldout/ssim", "held-out SSIM", True),
           ("heldout/spec", "held-out spec. dist.", False),
           ("sots-dev_outdoor/psnr", "SOTS out PSNR", True), ("sots-dev_outdoor/ssim", "SOTS out SSIM", True),
           ("sots-dev_outdoor/spec", "SOTS out spec.", False),
           ("sots-dev_indoor/psnr", "SOTS in PSNR", True), ("sots-dev_indoor/ssim", "SOTS in SSIM", True),
           ("sots-dev_indoor/spec", "SOTS in spec.", False))


def run_dir(runs: Path, arm: str, seed: int) -> Path:
    return runs / f"{arm}-s{seed}"


def read_stats(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def last_validation(d: Path) -> dict | None:
    rows = [r for r in read_stats(d / "stats.jsonl") if "val/psnr" in r]
    return rows[-1] if rows else None


def steps_of(arm: str) -> int:
    from dehaze.train.dehazing import read_config

    return int(read_config(CONFIGS / f"{arm}.yaml")["train"]["steps"])


def train_one(arm: str, seed: int, runs: Path, log_dir: Path) -> int:
    d = run_dir(runs, arm, seed)
    v = last_validation(d)
    if v is not None and v["step"] >= steps_of(arm):
        print(f"{d.name}: done", flush=True)
        return 0
    cmd = [sys.executable, str(HERE / "train_dehaze.py"), "-c", str(CONFIGS / f"{arm}.yaml"),
           "--set", f"seed={seed}", "--out", str(d)] + (["--resume"] if (d / "last.pt").is_file() else [])
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"{d.name}: {' '.join(cmd)}", flush=True)
    with open(log_dir / f"{d.name}.log", "a") as log:
        code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    print(f"{d.name}: exit {code}", flush=True)
    return code


def cmd_run(args: argparse.Namespace) -> int:
    jobs = [(a, s) for s in args.seeds for a in args.arms]  # seed-major: every arm has seed 0 first
    with ThreadPoolExecutor(args.jobs) as pool:
        codes = list(pool.map(lambda j: train_one(j[0], j[1], args.runs, args.runs / "logs"), jobs))
    return max(codes, default=0)


def mean_std(v: list[float]) -> tuple[float, float]:
    a = np.asarray(v, float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else math.nan


def paired(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Mean and standard deviation of the per-seed difference a − b, and the paired t-test's p."""
    from scipy import stats

    d = np.asarray(a, float) - np.asarray(b, float)
    p = float(stats.ttest_rel(a, b).pvalue) if len(d) > 1 and d.std() > 0 else math.nan
    return float(d.mean()), float(d.std(ddof=1)) if len(d) > 1 else math.nan, p


def collect(runs: Path, arms, seeds) -> dict:
    out = {}
    for arm in arms:
        per_seed = {}
        for s in seeds:
            d = run_dir(runs, arm, s)
            v = last_validation(d)
            if v is None:
                continue
            train = [r for r in read_stats(d / "stats.jsonl") if "acc/C" in r]
            per_seed[s] = {"val": {k[4:]: x for k, x in v.items() if k.startswith("val/")}, "step": v["step"],
                           "c_acc": [(r["step"], r["acc/C"], r["loss/C"]) for r in train],
                           "spectra": json.loads((d / "val_spectra.json").read_text())
                           if (d / "val_spectra.json").is_file() else None}
        if per_seed:
            out[arm] = per_seed
    return out


def cmd_report(args: argparse.Namespace) -> int:
    data = collect(args.runs, args.arms, args.seeds)
    if not data:
        print(f"no finished runs under {args.runs}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for arm, runs in data.items():
        seeds = sorted(runs)
        row = {"seeds": seeds, "steps": [runs[s]["step"] for s in seeds]}
        for key, _, _ in METRICS + (("heldout/acc/C", "", True), ("heldout/auc/C", "", True),
                                    ("heldout/acc/D", "", True), ("heldout/loss/C", "", False)):
            vals = [runs[s]["val"].get(key) for s in seeds]
            if all(v is not None for v in vals):
                row[key] = {"per_seed": vals, "mean": mean_std(vals)[0], "std": mean_std(vals)[1]}
        tail = [np.mean([a for st, a, _ in runs[s]["c_acc"] if st > row["steps"][0] // 2] or [math.nan])
                for s in seeds]
        if runs[seeds[0]]["c_acc"]:
            row["train_acc_C_second_half"] = {"per_seed": tail, "mean": mean_std(tail)[0], "std": mean_std(tail)[1]}
        summary[arm] = row
    tests = {}
    for ref in (CONTROL, "pix2pix"):
        if ref not in data:
            continue
        for arm in data:
            if arm == ref:
                continue
            common = sorted(set(data[arm]) & set(data[ref]))
            if len(common) < 2:
                continue
            tests[f"{arm} - {ref}"] = {k: dict(zip(("mean", "std", "p"), paired(
                [data[arm][s]["val"][k] for s in common], [data[ref][s]["val"][k] for s in common])), seeds=common)
                for k, _, _ in METRICS if all(k in data[x][s]["val"] for x in (arm, ref) for s in common)}
    (args.out / "results.json").write_text(json.dumps({"arms": summary, "paired": tests}, indent=1))
    (args.out / "table.md").write_text(table(summary, tests))
    figures(data, args.out, args.reference)
    print(table(summary, tests))
    return 0


def _fmt(row: dict, key: str, digits: int) -> str:
    if key not in row:
        return "–"
    m, s = row[key]["mean"], row[key]["std"]
    return f"{m:.{digits}f} ± {s:.{digits}f}" if not math.isnan(s) else f"{m:.{digits}f}"


def table(summary: dict, tests: dict) -> str:
    lines = ["| arm | seeds | " + " | ".join(label for _, label, _ in METRICS)
             + " | C acc. (held-out) | C loss (held-out) | C acc. (training, 2nd half) |",
             "|---|---|" + "---|" * (len(METRICS) + 3)]
    for arm, row in summary.items():
        cells = [_fmt(row, k, 4 if "spec" in k else 3 if "ssim" in k else 2) for k, _, _ in METRICS]
        c = [_fmt(row, k, 3) for k in ("heldout/acc/C", "heldout/loss/C", "train_acc_C_second_half")]
        lines.append(f"| {arm} | {len(row['seeds'])} | " + " | ".join(cells + c) + " |")
    lines += ["", "Paired differences across seeds (mean ± sd of arm − reference; paired t-test p):", "",
              "| arm − reference | " + " | ".join(label for _, label, _ in METRICS) + " |",
              "|---|" + "---|" * len(METRICS)]
    for name, t in tests.items():
        cells = []
        for k, _, _ in METRICS:
            if k not in t:
                cells.append("–")
                continue
            d = 4 if "spec" in k else 3 if "ssim" in k else 2
            cells.append(f"{t[k]['mean']:+.{d}f} ± {t[k]['std']:.{d}f} (p {t[k]['p']:.2f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figures(data: dict, out: Path, reference: Path | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = ["heldout", "sots-dev_outdoor", "sots-dev_indoor"]
    fig, axes = plt.subplots(1, len(sets), figsize=(5 * len(sets), 3.8), squeeze=False)
    for ax, name in zip(axes[0], sets):
        gt = None
        for arm, runs in data.items():
            diffs = []
            for r in runs.values():
                c = (r["spectra"] or {}).get("curves", {}).get(name)
                if c:
                    diffs.append(np.asarray(c["output"]) - np.asarray(c["ground_truth"]))
                    gt = c["ground_truth"]
            if not diffs:
                continue
            n = min(len(x) for x in diffs)
            d = np.stack([x[:n] for x in diffs])
            f = np.linspace(0, 1, n)
            ax.plot(f, d.mean(0), label=arm)
            if len(d) > 1:
                ax.fill_between(f, d.min(0), d.max(0), alpha=0.2)
        ax.axhline(0, color="black", lw=0.8)
        ax.set(title=f"{name}: output − ground truth", xlabel="normalised frequency", ylabel="Δ mean log |F|")
        if gt is not None:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "spectra.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for arm, runs in data.items():
        curves = [np.asarray(r["c_acc"]) for r in runs.values() if r["c_acc"]]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        acc = np.stack([c[:n, 1] for c in curves])
        steps = curves[0][:n, 0]
        ax.plot(steps, acc.mean(0), label=arm)
        ax.fill_between(steps, acc.min(0), acc.max(0), alpha=0.2)
    if reference is not None and reference.is_file():
        ref = np.asarray([(r["step"], r["acc/C"]) for r in read_stats(reference) if "acc/C" in r])
        ax.plot(ref[:, 0], ref[:, 1], color="grey", lw=0.8, label=f"reference: {reference.parent.name}")
    ax.axhline(0.5, color="black", lw=0.8, ls="--")
    ax.set(title="C's accuracy on each batch before it learns from it", xlabel="step", ylabel="accuracy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "c_accuracy.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("run", "report"):
        q = sub.add_parser(name)
        q.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
        q.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
        q.add_argument("--runs", type=Path, default=Path("runs/ablation"))
        if name == "run":
            q.add_argument("--jobs", type=int, default=1, help="runs at a time (one thread each)")
        else:
            q.add_argument("--out", type=Path, default=Path("docs/ablation"))
            q.add_argument("--reference", type=Path, help="a run's stats.jsonl whose acc/C is drawn for comparison, "
                           "e.g. models/dehaze-default/stage1/stats.jsonl (the shipped model's C)")
    args = p.parse_args(argv)
    return cmd_run(args) if args.cmd == "run" else cmd_report(args)


if __name__ == "__main__":
    sys.exit(main())
