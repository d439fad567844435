#!/usr/bin/env python
"""Train baseline and SSD variants at the same budget and tabulate FID and spectral discrepancy.

    python training/reproduce_ssd.py --budget 1500 --data ../shared/data/cifar10/train --seeds 2 \\
        --models sngan,ssd-sngan --width 64 --batch 32 --n-dis 2 --jobs 2 --out docs/reproduction

A model may carry a combine, ``ssd-sngan:weighted`` (``--set loss.combine=weighted`` for that model;
runs in ``<model>-<combine>-s<seed>``), so variants of one model can be compared.

Every (model, seed) run goes to ``OUT/runs/<model>-s<seed>/`` (or ``--runs-dir``) (log in ``train.log``); a run that
already finished at this budget is reused and an unfinished one resumed, so the command can be
re-run after an interruption. Then ``OUT/results.md`` (table: mean ± std over seeds, and per
seed), ``OUT/results.json``, ``OUT/power_spectrum.png`` (mean power spectra, band = ±1 std over
seeds), ``OUT/spectrum_difference.png`` and ``OUT/samples_<model>.png`` are written.
FID/KID appear only where Inception weights exist (see :mod:`dehaze.metrics.gan`); a named
``--inception`` file that is missing stops the command before any training. ``--kid-features FILE``
(``training/train_cifar_features.py``) adds ``KID_cifar``, a KID on a small CIFAR-10 classifier's features
(not comparable with published numbers); finished runs that lack it are scored again from their
checkpoint (same generator, noise and real images). Each variant is compared with its baseline
(and ``model:combine`` with ``model``) run by run, on the same seed: the per-seed differences, their
mean ± std, how many seeds improved, and a paired t-test.

``--jobs 1`` trains in this process one run after the other; ``--jobs N`` runs N training
processes at once (each with ``--threads`` torch threads).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dehaze.errors import ConfigError, DehazeError
from dehaze.gan.training import MODELS, check_eval_files, config_from_args, parse_args, resolve_config, train
from dehaze.metrics.spectral import plot_power_spectra, plot_spectrum_differences, spectral_discrepancy
from dehaze.train.checkpoint import atomic_write_bytes, load_checkpoint

HERE = Path(__file__).resolve().parent
METRICS = (("spec_hf", "D_hf ↓"), ("spec_hf_inner", "D_hf ≤ Nyquist ↓"), ("spec_corner", "D_hf corners ↓"),
           ("spec_all", "D_all ↓"), ("fid", "FID ↓"), ("kid", "KID×10³ ↓"), ("kid_cifar", "KID_cifar×10³ ↓"))
SCALE = {"kid": 1000.0, "kid_cifar": 1000.0}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="reproduce_ssd.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=int, required=True, help="generator steps per run")
    p.add_argument("--data", required=True, help="image folder, or cifar10 | cifar100 | stl10 (with --data-root)")
    p.add_argument("--data-root", help="folder holding the torchvision data set's files")
    p.add_argument("--seeds", type=int, default=2, help="seeds per model (0 .. N-1)")
    p.add_argument("--models", default="sngan,ssd-sngan", help=f"comma-separated, from {', '.join(MODELS)}")
    p.add_argument("--feature", default=None, help="SSD spectral feature (azimuthal | phase | full)")
    p.add_argument("--out", default="results/ssd-reproduction", help="results folder (tables, figures)")
    p.add_argument("--runs-dir", default=None, help="where the runs go (default OUT/runs)")
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--width", type=int, default=None, help="ngf = ndf (reduced-width runs)")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--n-dis", type=int, default=None)
    p.add_argument("--samples", type=int, default=None, help="generated images per evaluation")
    p.add_argument("--eval-every", type=int, default=0, help="steps between evaluations (0: at the end)")
    p.add_argument("--inception", default=None, help="Inception-v3 weights file (enables FID/KID)")
    p.add_argument("--kid-features", default=None,
                   help="CIFAR classifier file (train_cifar_features.py): adds KID_cifar, rescoring finished runs")
    p.add_argument("--config", default=None, help="YAML config shared by all runs")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (1: in this process)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    return p.parse_args(argv)


def split_model(name: str) -> tuple[str, str | None]:
    """``ssd-sngan:weighted`` -> (``ssd-sngan``, ``weighted``); ``sngan`` -> (``sngan``, None)."""
    model, _, combine = name.partition(":")
    return model, combine or None


def run_name(name: str) -> str:
    return name.replace(":", "-")


def baselines_of(name: str, models: list[str]) -> list[str]:
    """What a model is compared with: ``ssd-X`` with ``X``; ``model:combine`` with ``model`` and with ``model``'s
    own baseline."""
    model, combine = split_model(name)
    out = [model] if combine and model in models else []
    base = model.removeprefix("ssd-")
    return out + ([base] if model.startswith("ssd-") and base in models else [])


def run_args(args: argparse.Namespace, name: str, seed: int, run_dir: Path) -> list[str]:
    """The train_unconditional.py arguments of one run."""
    model, combine = split_model(name)
    a = ["--model", model, "--data", str(args.data), "--steps", str(args.budget), "--seed", str(seed),
         "--out", str(run_dir), "--threads", str(args.threads), "--eval-every", str(args.eval_every)]
    for flag in ("data_root", "feature", "resolution", "width", "batch", "n_dis", "samples", "inception",
                 "kid_features", "config"):
        v = getattr(args, flag)
        if v is not None:
            a += ["--" + flag.replace("_", "-"), str(v)]
    for o in args.overrides:
        a += ["--set", o]
    if combine:
        a += ["--set", f"loss.combine={combine}"]
    return a


def _status(run_dir: Path, budget: int) -> str:
    """``done``, ``resume`` or ``new``."""
    ckpt = run_dir / "last.pt"
    if not ckpt.is_file():
        return "new"
    try:
        step = int(load_checkpoint(ckpt).get("step", 0))
    except DehazeError:
        return "new"
    return "done" if step >= budget else "resume"


def train_all(args: argparse.Namespace, runs: list[tuple[str, int, Path]]) -> None:
    todo = []
    for model, seed, run_dir in runs:
        status = _status(run_dir, args.budget)
        if status == "done":
            print(f"{run_dir.name}: finished earlier, reused", file=sys.stderr)
            continue
        a = run_args(args, model, seed, run_dir) + (["--resume"] if status == "resume" else [])
        todo.append((run_dir, a))
    if args.jobs <= 1:
        for run_dir, a in todo:
            print(f"{run_dir.name}: training", file=sys.stderr)
            cfg = config_from_args(parse_args(a))
            train(cfg, resume="--resume" in a)
        return
    pending, active, failed = list(todo), [], []
    while pending or active:
        while pending and len(active) < args.jobs:
            run_dir, a = pending.pop(0)
            run_dir.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, str(HERE / "train_unconditional.py"), *a]
            log = open(run_dir / "train.log", "a")
            log.write("$ " + shlex.join(cmd) + "\n")
            log.flush()
            print(f"{run_dir.name}: training (log {run_dir / 'train.log'})", file=sys.stderr)
            active.append((run_dir, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log))
        time.sleep(0.5)
        for item in list(active):
            run_dir, proc, log = item
            if proc.poll() is not None:
                log.close()
                active.remove(item)
                if proc.returncode != 0:
                    failed.append(run_dir.name)
                    print(f"{run_dir.name}: failed (exit {proc.returncode}); see {run_dir / 'train.log'}",
                          file=sys.stderr)
    if failed:
        raise DehazeError(f"{len(failed)} run(s) failed: {', '.join(failed)}")


def rescore(run_dir: Path, kid_path: str, cache: dict) -> bool:
    """Add ``kid_cifar`` to a finished run's last evaluation, scoring the checkpoint's generator again exactly as
    the trainer did (same G or G_ema, noise seed, sample count and real images); False if it was there."""
    import torch

    from dehaze.gan import load_gan_generator
    from dehaze.gan.data import load_dataset
    from dehaze.gan.evaluate import RealReference, evaluate, real_images, standing_stats
    from dehaze.metrics.gan import load_cifar_features

    last = max((run_dir / "eval").glob("[0-9]*"))
    mfile = last / "metrics.json"
    metrics = json.loads(mfile.read_text())
    if "kid_cifar" in metrics:
        return False
    state = load_checkpoint(run_dir / "last.pt")
    if int(state["step"]) != int(last.name):
        raise DehazeError(f"{run_dir}: the checkpoint (step {state['step']}) is not the last evaluation's ({last.name})")
    cfg, ec = state["config"], state["config"]["eval"]
    use_g = ec.get("generator", "ema") == "G"
    G, _ = load_gan_generator(run_dir / "last.pt", prefer_ema=not use_g)
    if not use_g:
        standing_stats(G, n_batches=ec["bn_batches"], batch=64, seed=cfg["seed"])
    key = (cfg["data"]["path"], cfg["data"]["root"], int(cfg["data"]["resolution"]), int(ec["real"]), kid_path)
    if key not in cache:
        ext = load_cifar_features(kid_path)
        data = load_dataset(cfg["data"]["path"], cfg["data"]["root"], key[2])
        cache[key] = (ext, RealReference(real_images(data, ec["real"], 0), kid_extractor=ext))
    ext, ref = cache[key]
    with torch.no_grad():
        ev = evaluate(G, ref, None, n=ec["samples"], seed=cfg["seed"], kid_extractor=ext,
                      kid_subsets=ec["kid_subsets"])
    metrics |= {k: ev.scalars[k] for k in ("kid_cifar", "kid_cifar_std")}
    atomic_write_bytes(mfile, lambda f: f.write(json.dumps(metrics, indent=2).encode()))
    return True


def _paired(models: list[str], runs, per_run: dict, keys: list[tuple[str, str]]) -> list[str]:
    """Per-seed differences variant − baseline on the same seed, mean ± std, seeds improved, paired t-test."""
    from scipy import stats

    lines = []
    for m, base in [(name, b) for name in models for b in baselines_of(name, models)]:
        seeds = [s for (mm, s, _) in runs if mm == m and (base, s) in per_run]
        for k, head in keys:
            pairs = [(per_run[(m, s)][k], per_run[(base, s)][k]) for s in seeds
                     if k in per_run[(m, s)] and k in per_run[(base, s)]]
            if not pairs:
                continue
            d = np.array([a - b for a, b in pairs]) * SCALE.get(k, 1.0)
            p = stats.ttest_rel([a for a, _ in pairs], [b for _, b in pairs]).pvalue if len(d) > 1 else float("nan")
            lines.append(f"| {m} − {base} | {head} | " + ", ".join(f"{v:+.4f}" for v in d) + f" | {_fmt(list(d), digits=4)}"
                         f" | {int((d < 0).sum())}/{len(d)} | {p:.3f} |")
    if not lines:
        return []
    return ["| comparison (same seed: same init, data order and evaluation noise) | metric | Δ per seed | "
            "mean Δ ± std | seeds lower | paired t-test p |", "|---|---|---|---|---|---|", *lines, ""]


def c_diagnostics(run_dir: Path, cache: dict, n: int = 1000) -> dict:
    """What the finished run's C says about ``n`` real and ``n`` generated images (the scored generator): mean
    logits, AUC (P[C(real) > C(fake)]), sign accuracy, and the 5th-95th percentiles over the fakes of the
    weight ``up`` that the ``weighted`` combine gives G's gradient (:func:`dehaze.nets.ssd.hard_example_weights`)."""
    import torch

    from dehaze.gan import load_gan_generator
    from dehaze.gan.data import load_dataset
    from dehaze.gan.evaluate import real_images, standing_stats
    from dehaze.gan.training import build_nets
    from dehaze.nets.ssd import hard_example_weights

    state = load_checkpoint(run_dir / "last.pt")
    cfg = state["config"]
    if not cfg["model"].startswith("ssd-"):
        return {}
    cfg["loss"].setdefault("c_scale", 1.0)
    _, D = build_nets(cfg)
    D.load_state_dict(state["D"])
    D.eval()
    use_g = cfg["eval"].get("generator", "ema") == "G"
    G, _ = load_gan_generator(run_dir / "last.pt", prefer_ema=not use_g)
    if not use_g:
        standing_stats(G, n_batches=cfg["eval"]["bn_batches"], batch=64, seed=cfg["seed"])
    key = ("c", cfg["data"]["path"], cfg["data"]["root"], int(cfg["data"]["resolution"]), n)
    if key not in cache:
        cache[key] = real_images(load_dataset(cfg["data"]["path"], cfg["data"]["root"], key[3]), n, 1)
    with torch.no_grad():
        fake = G.sample(n, generator=torch.Generator().manual_seed(cfg["seed"] + 1000))
        cr = (D.c_scale * D.C(D.phi(cache[key]))).flatten()
        cf = (D.c_scale * D.C(D.phi(fake))).flatten()
        up = hard_example_weights(cf, D.lam)[0]
    return {"c_real": float(cr.mean()), "c_fake": float(cf.mean()), "c_auc": float((cr[:, None] > cf[None, :]).float().mean()),
            "c_sign_acc": float(((cr > 0).float().mean() + (cf <= 0).float().mean()) / 2),
            "w_up_p5": float(up.quantile(0.05)), "w_up_p95": float(up.quantile(0.95))}


def _c_accuracy(run_dir: Path) -> dict:
    """C's accuracy on its training batches over the run's last logging window (``acc_C``), if it has a C."""
    stats = run_dir / "stats.jsonl"
    lines = stats.read_text().strip().splitlines() if stats.is_file() else []
    for line in reversed(lines):
        rec = json.loads(line)
        if "acc/C" in rec:
            return {"acc_C": rec["acc/C"]}
    return {}


def _evals(run_dir: Path, size: int) -> list[tuple[int, dict, dict]]:
    """Every evaluation of a run: ``(step, scalars, spectra)``, oldest first.

    The spectral scores are recomputed from the saved spectra with the current definitions;
    FID/KID come from the run's ``metrics.json``.
    """
    out = []
    for d in sorted((run_dir / "eval").glob("[0-9]*")):
        scalars = json.loads((d / "metrics.json").read_text())
        spectra = dict(np.load(d / "spectra.npz")) | {"samples": d / "samples.png"}
        scalars |= spectral_discrepancy(spectra["power_real"], spectra["power_fake"], nyquist=size // 2)
        out.append((int(d.name), scalars, spectra))
    if not out:
        raise DehazeError(f"{run_dir} has no evaluation; was it trained to the end?")
    return out


def _fmt(vals: list[float], scale: float = 1.0, digits: int = 3) -> str:
    if not vals:
        return "n/a"
    v = np.asarray(vals) * scale
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def summarise(args: argparse.Namespace, models: list[str], runs: list[tuple[str, int, Path]], command: str) -> str:
    out = Path(args.out)
    cfg0 = load_checkpoint(runs[0][2] / "last.pt")["config"]
    res = int(cfg0["data"]["resolution"])
    history, per_run, spectra, cache = {}, {}, {}, {}
    for model, seed, run_dir in runs:
        history[(model, seed)] = _evals(run_dir, res)
        step, scalars, spectra[(model, seed)] = history[(model, seed)][-1]
        per_run[(model, seed)] = scalars | {"step": step} | _c_accuracy(run_dir) | c_diagnostics(run_dir, cache)

    # figures: spectra averaged over seeds (band: ±1 std of log10 P over seeds)
    real = np.mean([s["power_real"] for s in spectra.values()], axis=0)
    curves, maps = {}, {}
    for m in models:
        logp = np.stack([np.log10(spectra[(m, s)]["power_fake"]) for (mm, s, _) in runs if mm == m])
        curves[m] = (logp.mean(0), logp.std(0))
        maps[m] = np.mean([np.abs(spectra[(m, s)]["logmag_real"] - spectra[(m, s)]["logmag_fake"])
                           for (mm, s, _) in runs if mm == m], axis=0)
        first = next(s for (mm, s, _) in runs if mm == m)
        shutil.copyfile(spectra[(m, first)]["samples"], out / f"samples_{run_name(m)}.png")
    plot_power_spectra(real, curves, res, out / "power_spectrum.png",
                       title=f"mean power spectrum, {args.budget} steps, {args.seeds} seed(s)")
    plot_spectrum_differences(maps, out / "spectrum_difference.png", title="|Δ mean log|F|| (real vs generated)")

    # tables
    has_fid = any("fid" in v for v in per_run.values())
    has_kc = any("kid_cifar" in v for v in per_run.values())
    cols = [(k, h) for k, h in METRICS if (has_fid or k not in ("fid", "kid")) and (has_kc or k != "kid_cifar")]
    lines = ["| model | " + " | ".join(h for _, h in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    summary = {}
    for m in models:
        cells = []
        for k, _ in cols:
            vals = [per_run[(m, s)][k] for (mm, s, _) in runs if mm == m and k in per_run[(m, s)]]
            cells.append(_fmt(vals, SCALE.get(k, 1.0), 2 if k in ("fid", "kid", "kid_cifar") else 4))
            summary.setdefault(m, {})[k] = vals
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    seed_lines = ["| model | seed | step | " + " | ".join(h for _, h in cols) + " |", "|---" * (len(cols) + 3) + "|"]
    for (m, s), v in sorted(per_run.items(), key=lambda kv: (models.index(kv[0][0]), kv[0][1])):
        cells = [(f"{v[k] * SCALE.get(k, 1.0):.4f}" if k in v else "n/a") for k, _ in cols]
        seed_lines.append(f"| {m} | {s} | {v['step']} | " + " | ".join(cells) + " |")
    acc = [f"| {m} | " + _fmt([per_run[(m, s)]["acc_C"] for (mm, s, _) in runs if mm == m]) + " | "
           + ", ".join(f"{per_run[(m, s)]['acc_C']:.3f}" for (mm, s, _) in runs if mm == m) + " |"
           for m in models if all("acc_C" in per_run[(m, s)] for (mm, s, _) in runs if mm == m)]
    if acc:
        acc = ["C's accuracy on its own real/fake training batches over the last logged window "
               "(`log.every` steps; chance 0.5):", "", "| model | mean ± std | per seed |", "|---|---|---|", *acc, ""]
        acc += ["C at the end, on 1,000 real and 1,000 generated images (logits as D_ss uses them; AUC = "
                "P[C(real) > C(fake)], 0.5 = chance; `up`: the weight the `weighted` combine would give G's gradient, "
                "5th–95th percentile over the fakes):", "",
                "| model | seed | C real | C fake | AUC | sign accuracy | up, 5–95 % |", "|---|---|---|---|---|---|---|"]
        acc += [f"| {m} | {s} | {v['c_real']:+.3f} | {v['c_fake']:+.3f} | {v['c_auc']:.3f} | {v['c_sign_acc']:.3f} | "
                f"{v['w_up_p5']:.3f}–{v['w_up_p95']:.3f} |" for (m, s), v in per_run.items() if "c_auc" in v]
        acc.append("")
    steps = sorted({st for h in history.values() for st, _, _ in h})
    trend = ["| model | " + " | ".join(f"step {st}" for st in steps) + " |", "|---" * (len(steps) + 1) + "|"]
    for m in models:
        cells = []
        for st in steps:
            vals = [sc["spec_hf"] for (mm, _), h in history.items() if mm == m for s2, sc, _ in h if s2 == st]
            cells.append(_fmt(vals, digits=4))
        trend.append(f"| {m} | " + " | ".join(cells) + " |")
    pairs = _paired(models, runs, per_run, cols)
    fid_note = "" if has_fid else ("\nFID/KID: not computed (no Inception-v3 weights on this machine; see "
                                   "`python -m dehaze.metrics --help` for where to put them).\n")
    if has_kc:
        fid_note += ("\nKID_cifar: KID (×10³) on the 96-d features of a small CIFAR-10 classifier trained here "
                     "(`training/train_cifar_features.py`); it ranks these generators but is **not** comparable "
                     "with published FID/KID, which use Inception.\n")
    tc = cfg0["train"]
    md = "\n".join([
        "# SSD-GAN reproduction results", "",
        f"Data `{cfg0['data']['path']}` at {res}×{res}; {args.budget} generator steps per run, batch {tc['batch']}, "
        f"n_dis {tc['n_dis']}, ngf {cfg0['net']['ngf']}, ndf {cfg0['net']['ndf']}, "
        f"lr {tc['lr_G']} (decay {tc['decay']}), Adam betas {tc['betas']}, λ {cfg0['loss']['lam']}, "
        f"C: {cfg0['feature']} φ with {cfg0['net'].get('drop_high', 0)} corner bins dropped, trained with "
        f"{cfg0['loss'].get('c_loss', 'bce')}; "
        f"{per_run[runs[0][:2]]['n']} generated images per evaluation "
        f"({'G' if cfg0['eval'].get('generator', 'ema') == 'G' else 'G_ema'}) against {cfg0['eval']['real']} real, "
        f"seeds 0..{args.seeds - 1}.", "",
        "D_hf / D_all: mean |log10 P̄_real(r) − log10 P̄_fake(r)| over the upper half / all radial bins of the "
        f"mean power spectrum (decades; definition in `dehaze/metrics/spectral.py`); D_hf split into radii up to the "
        f"Nyquist rate ({res // 2} cycles) and the corner bins beyond it. Mean ± sample std over seeds.",
        fid_note, *lines, "", "Per run:", "", *seed_lines, "", *pairs, *acc, "D_hf during training (mean ± std over seeds):",
        "",
        *trend, "",
        "Figures: `power_spectrum.png` (band ±1 std over seeds), `spectrum_difference.png`, `samples_<model>.png`.",
        "", "Command:", "", "```", command, "```", ""])
    atomic_write_bytes(out / "results.md", lambda f: f.write(md.encode()))
    js = {"budget": args.budget, "seeds": args.seeds, "command": command, "summary": summary,
          "runs": {f"{m}-s{s}": v for (m, s), v in per_run.items()}}
    atomic_write_bytes(out / "results.json", lambda f: f.write(json.dumps(js, indent=2, default=str).encode()))
    return md


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    command = "python training/reproduce_ssd.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        bad = [m for m in models if split_model(m)[0] not in MODELS]
        if bad or not models:
            raise ConfigError(f"unknown model(s) {', '.join(bad) or '(none)'}; choose from {', '.join(MODELS)}")
        if args.budget < 1 or args.seeds < 1:
            raise ConfigError("--budget and --seeds must be positive")
        out = Path(args.out)
        runs_dir = Path(args.runs_dir) if args.runs_dir else out / "runs"
        # seed-major order: with --jobs 2 each pair of runs compares models on one seed
        runs = [(m, s, runs_dir / f"{run_name(m)}-s{s}") for s in range(args.seeds) for m in models]
        # check every run's config and named weights files before training anything
        for m, s, d in runs:
            check_eval_files(resolve_config(config_from_args(parse_args(run_args(args, m, s, d)))))
        out.mkdir(parents=True, exist_ok=True)
        train_all(args, runs)
        if args.kid_features:
            cache: dict = {}
            for _, _, d in runs:
                if rescore(d, args.kid_features, cache):
                    print(f"{d.name}: KID_cifar added from its checkpoint", file=sys.stderr)
        md = summarise(args, models, runs, command)
    except DehazeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
