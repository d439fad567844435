"""The dehazing trainer: U-Net G against a conditional PatchGAN D, optionally SSD-enhanced.

Modes (``mode`` in the config):

=============  ===================================================================
``l1``         G alone, reconstruction losses only.
``pix2pix``    adversarial loss from a conditional PatchGAN D (+ λ_L1·L1).
``ssd``        D_ss = λ·D + (1−λ)·C(φ(x)), φ the azimuthal spectrum (SSD-GAN eq. 6).
``ssd-phase``  as ``ssd`` with phase-aware spectral features.
``ssd-full``   as ``ssd`` with a 2-D convolutional C over the full log-magnitude map.
=============  ===================================================================

Each step (:func:`train_step`, the shape of the unconditional trainer, :mod:`dehaze.gan.training`):
G's forward once (:func:`generator_forward`), the D phase on it detached (:func:`discriminator_step`),
the G phase through the frozen D (:func:`generator_step`) on the loss :func:`build_g_loss` builds once
from the config's ``loss:`` weights. Batches come from the step-indexed sampler
(:func:`dehaze.train.dist.step_batches`), so a stopped run resumes bit-identically. Every setting
and its default: ``dehaze/train/defaults.yaml``.

Entry point: ``python training/train_dehaze.py --config training/configs/small.yaml``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from dehaze.errors import ConfigError, run_reporting_errors
from dehaze.io import atomic_file
from dehaze.losses import (
    GAN_LOSSES,
    WeightedLoss,
    accuracy,
    classifier_loss,
    d_loss,
    g_loss,
    l1_loss,
    ranking_auc,
    spectral_regularizer,
)
from dehaze.metrics import psnr, spectral_distance, ssim
from dehaze.nets import (
    PatchDiscriminator,
    SSDDiscriminator,
    SSDOutput,
    UNetGenerator,
    build_spectral_classifier,
    count_parameters,
)
from dehaze.spectral import azimuthal_spectrum
from dehaze.train import dist
from dehaze.train.config import load_config, read_defaults
from dehaze.train.logger import progress
from dehaze.train.run import EMA, Meter, Models, Run, autocast, constant_decay, grad_scaler, linear_decay

MODES = ("l1", "pix2pix", "ssd", "ssd-phase", "ssd-full")
FEATURE_OF_MODE = {"ssd": "azimuthal", "ssd-phase": "phase", "ssd-full": "full"}
# Every setting with its default: dehaze/train/defaults.yaml (package data), the one source of defaults.
DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")
DEFAULTS: dict = read_defaults("dehaze.train")

# Settings that were removed (docs/ablation.md, "Removed experiments") -> the value that meant "off":
# the config.yaml of older runs still loads when it has them at that value.
RETIRED = {"model.G.airlight_head": "mean", "loss.ssim": 0.0, "loss.freq_l1": 0.0,
           "loss.d_transform": "none", "loss.hf_radius": 0.25, "data.two_scale": 0,
           # the guided filter on t left the generator: dehaze.nets.unet.GuidedUpsample, set at export
           "model.G.t_refine": 0, "model.G.t_refine_eps": 1.0}


def read_config(path: str | Path | None, overrides=()) -> dict:
    """The trainer's config: ``path`` (YAML, with its ``_base_`` chain) over :data:`DEFAULTS`, then
    ``key=value`` overrides; unknown keys are one ConfigError, removed ones (:data:`RETIRED`) dropped."""
    return load_config(path, overrides, DEFAULTS, RETIRED)


def check_config(cfg: dict) -> None:
    """Value checks that YAML types cannot express; one ConfigError naming the setting."""
    if cfg["mode"] not in MODES:
        raise ConfigError(f"mode '{cfg['mode']}' is not one of {', '.join(MODES)}")
    if cfg["loss"]["gan"] not in GAN_LOSSES:
        raise ConfigError(f"loss.gan '{cfg['loss']['gan']}' is not one of {', '.join(GAN_LOSSES)}")
    if cfg["loss"]["gan"] == "hinge" and cfg["mode"].startswith("ssd") and cfg["loss"]["combine"] == "prob":
        raise ConfigError("loss.gan=hinge needs loss.combine=logit (hinge works on logits)")
    for k in G_TERMS:
        if not isinstance(cfg["loss"][k], int | float) or cfg["loss"][k] < 0:
            raise ConfigError(f"loss.{k} must be a number >= 0, got {cfg['loss'][k]!r}")
    if not any(cfg["loss"][k] for k in G_TERMS if k != "adv" or cfg["mode"] != "l1"):
        raise ConfigError("every generator loss weight is 0 (loss.l1, loss.adv, ...): nothing to train")
    if not 0 <= cfg["loss"]["lam"] <= 1:
        raise ConfigError(f"loss.lam must be in [0, 1], got {cfg['loss']['lam']}")
    if not cfg["data"]["clean"] and not cfg["data"]["paired"]:
        raise ConfigError("no training data: set data.clean (clean photos) or data.paired (hazy/clear pairs)")
    for k in ("steps", "batch"):
        if int(cfg["train"][k]) < 1:
            raise ConfigError(f"train.{k} must be positive")
    for k in ("log.every", "val.every"):  # 0 would divide by zero at the first step
        sec, key = k.split(".")
        if int(cfg[sec][key]) < 1:
            raise ConfigError(f"{k} must be a positive number of steps (validation also runs at the last step)")
    if asm_supervised(cfg):
        if cfg["model"]["G"]["head"] != "asm":
            raise ConfigError("loss.airlight / loss.transmission need model.G.head=asm")
        if cfg["data"]["paired"]:
            raise ConfigError("loss.airlight / loss.transmission need synthetic pairs only (data.paired has no A, t)")
    init = cfg["train"]["init"]
    if not (isinstance(init, str) or (isinstance(init, list) and all(isinstance(p, str) for p in init))):
        raise ConfigError(f"train.init must be a checkpoint path or a list of them, got {init!r}")
    sc = cfg["data"]["scale"]
    if not (isinstance(sc, list) and len(sc) == 2 and all(isinstance(v, int | float) for v in sc)
            and 0 < sc[0] <= sc[1] <= 1):
        raise ConfigError(f"data.scale={sc} must be [low, high] with 0 < low <= high <= 1")
    m = 2 ** int(cfg["model"]["G"]["depth"])
    if cfg["data"]["crop"] % m:
        raise ConfigError(f"data.crop={cfg['data']['crop']} must be a multiple of 2**depth = {m}")
    vs = cfg["val"]["synthetic"]
    if vs and vs["photos"] and vs["crop"] % m:
        raise ConfigError(f"val.synthetic.crop={vs['crop']} must be a multiple of 2**depth = {m}")
    if not isinstance(cfg["data"]["exclude"], list):
        raise ConfigError(f"data.exclude must be a list of split files, got {cfg['data']['exclude']!r}")


def asm_supervised(cfg: dict) -> bool:
    """Whether the asm head's A and t are supervised with the synthesised ones."""
    return bool(cfg["loss"]["airlight"] or cfg["loss"]["transmission"])


# ---------------------------------------------------------------------------------------- data


def build_train_set(cfg: dict):
    """Synthetic pairs from ``data.clean`` and real ones from ``data.paired``, one data set whose items
    take the ``(index, epoch)`` keys of the step sampler."""
    from dehaze.data import ConcatKeyed, PairedFolderDataset, SyntheticHazeDataset, read_split

    d = cfg["data"]
    parts = []
    if d["clean"]:
        exclude = [rel for split in d["exclude"] for rel in read_split(split)]
        parts.append(SyntheticHazeDataset(d["clean"], d["crop"], build_haze(d["haze"]),
                                          samples_per_epoch=d["samples_per_epoch"], seed=cfg["seed"],
                                          cache=d["cache"], with_asm=asm_supervised(cfg),
                                          scale=tuple(d["scale"]), exclude=exclude))
    for root in d["paired"]:
        parts.append(PairedFolderDataset(root, crop=d["crop"], augment=True, seed=cfg["seed"]))
    return parts[0] if len(parts) == 1 else ConcatKeyed(parts)


def build_haze(spec):
    """Haze ranges from the config (data.haze): :func:`dehaze.haze.haze_from_config`."""
    from dehaze.haze import haze_from_config

    return haze_from_config(spec)


HELDOUT = "heldout"  # the name of the synthetic validation set (val.synthetic) in logs and val.select


def load_val_sets(cfg: dict, multiple: int) -> dict[str, list[dict]]:
    """Validation pairs, loaded once: :data:`HELDOUT`, synthesised from the held-out photos of
    ``val.synthetic`` (the same pairs for every run), then full images of each ``val.dirs`` folder
    (cropped to the size multiple)."""
    from dehaze.data import PairedFolderDataset, SyntheticHazeDataset, split_photos

    out = {}
    vs = cfg["val"]["synthetic"]
    if vs and vs["photos"]:
        photos = split_photos(vs["photos"], vs["root"])
        ds = SyntheticHazeDataset(photos, vs["crop"], build_haze(vs["haze"] or cfg["data"]["haze"]),
                                  seed=vs["seed"], scale=(0.5, 1.0))
        out[HELDOUT] = [ds[(i, 0)] for i in range(len(photos))]
    for root in cfg["val"]["dirs"]:
        ds = PairedFolderDataset(root, crop=None, augment=False, multiple=multiple)
        n = len(ds)
        k = cfg["val"]["max_images"]
        idx = range(n) if not k or k >= n else np.linspace(0, n - 1, k).round().astype(int)
        name = "_".join(Path(root).resolve().parts[-2:])
        out[name] = [ds[int(i)] for i in idx]
    return out


# ---------------------------------------------------------------------------------------- nets


def build_nets(cfg: dict, device: torch.device):
    """G, and D (plain or SSD) or None for ``l1``."""
    try:
        G = UNetGenerator(**cfg["model"]["G"]).to(device)
    except ValueError as exc:
        raise ConfigError(f"model.G: {exc}") from None
    if cfg["mode"] == "l1":
        return G, None
    D = PatchDiscriminator(in_channels=6, **cfg["model"]["D"])
    if cfg["mode"] in FEATURE_OF_MODE:
        feature = FEATURE_OF_MODE[cfg["mode"]]
        crop = cfg["data"]["crop"]
        c = cfg["model"]["C"]
        C = build_spectral_classifier(feature, crop, crop, hidden=c["hidden"], conv_width=c["conv_width"],
                                      standardize=c["standardize"])
        D = SSDDiscriminator(D, C, lam=cfg["loss"]["lam"], feature=feature, combine=cfg["loss"]["combine"],
                             conditional=c["conditional"])
    return G, D.to(device)


def build_models(cfg: dict, device: torch.device) -> Models:
    """G, D (None for ``l1``), G's EMA (``train.ema`` after ``train.ema_start``), Adam for both, the AMP scaler."""
    G, D = build_nets(cfg, device)
    tc = cfg["train"]
    betas = tuple(tc["betas"])
    return Models(G, D, EMA(G, constant_decay(tc["ema"], tc["ema_start"])),
                  torch.optim.Adam(G.parameters(), lr=tc["lr_G"], betas=betas),
                  torch.optim.Adam(D.parameters(), lr=tc["lr_D"], betas=betas) if D is not None else None,
                  grad_scaler(device, bool(cfg["amp"])))


# ---------------------------------------------------------------------------------------- losses and steps


@dataclass
class Pass:
    """One forward of G on a batch: what the D and G steps and the loss terms read.

    ``t``, ``A`` (G's) and ``t_true``, ``A_true`` (the synthesised ones) only when the ``asm`` head
    is supervised.
    """

    hazy: torch.Tensor
    clear: torch.Tensor
    fake: torch.Tensor
    t: torch.Tensor | None = None
    A: torch.Tensor | None = None
    t_true: torch.Tensor | None = None
    A_true: torch.Tensor | None = None


def generator_forward(Gd: torch.nn.Module, batch: dict, cfg: dict, device: torch.device) -> Pass:
    """G's forward, once per step (D's step sees it detached)."""
    sup, amp = asm_supervised(cfg), bool(cfg["amp"])
    hazy, clear = batch["hazy"].to(device, non_blocking=True), batch["clear"].to(device, non_blocking=True)
    t_true = batch["t"].to(device) if sup else None
    A_true = batch["A"].to(device) if sup else None
    with autocast(device, amp):
        fake, t, A = Gd(hazy, return_asm=True) if sup else (Gd(hazy), None, None)
    return Pass(hazy, clear, fake, t, A, t_true, A_true)


# the generator's loss terms: config weight (loss.NAME) -> (logged as loss/..., the term of a Pass)
G_TERMS = {
    "l1": "G_L1",  # L1 to the ground truth
    "adv": "G_adv",  # adversarial, through the frozen D
    "spectral_reg": "G_spec",  # BCE between the azimuthal spectra of output and ground truth
    "airlight": "G_A",  # asm head: L1 of A to the synthesised airlight
    "transmission": "G_t",  # asm head: L1 of t to the synthesised transmission
}


def build_g_loss(cfg: dict, D: torch.nn.Module | None, device: torch.device) -> WeightedLoss:
    """The generator's loss, built once from the config's ``loss:`` weights (zero weights are skipped;
    ``adv`` without a D too): a :class:`~dehaze.losses.WeightedLoss` of functions of a :class:`Pass`."""
    gan, amp = cfg["loss"]["gan"], bool(cfg["amp"])

    def adversarial(p: Pass) -> torch.Tensor:
        with autocast(device, amp):
            return g_loss(D(p.fake, cond=p.hazy), gan)

    terms = {
        "l1": lambda p: l1_loss(p.fake.float(), p.clear),
        "adv": adversarial,
        "spectral_reg": lambda p: spectral_regularizer(p.fake, p.clear, paired=True),
        "airlight": lambda p: (p.A.float().flatten(1) - p.A_true).abs().mean(),
        "transmission": lambda p: (p.t.float() - p.t_true).abs().mean(),
    }
    weights: Mapping[str, float] = {k: cfg["loss"][k] if k != "adv" or D is not None else 0.0 for k in G_TERMS}
    return WeightedLoss(weights, {k: (G_TERMS[k], fn) for k, fn in terms.items()})


def discriminator_step(m: Models, Dd: torch.nn.Module, p: Pass, cfg: dict) -> dict:
    """One update of D (and of C, with its own loss, for SSD) on the ground truth and G's output."""
    with autocast(p.hazy.device, bool(cfg["amp"])):
        real_out, fake_out = Dd(p.clear, cond=p.hazy), Dd(p.fake.detach(), cond=p.hazy)
    loss = loss_D = d_loss(real_out, fake_out, cfg["loss"]["gan"])
    stats = {"loss/D": loss_D.item(), "acc/D": _acc(real_out, fake_out)}
    if isinstance(m.D, SSDDiscriminator):
        loss_C = classifier_loss(real_out, fake_out)
        loss = loss + loss_C
        stats.update({"loss/C": loss_C.item(), "acc/C": accuracy(real_out.spectral, fake_out.spectral)})
    m.optD.zero_grad(set_to_none=True)
    m.scaler.scale(loss).backward()
    m.scaler.step(m.optD)
    return stats


def generator_step(m: Models, p: Pass, loss_fn: WeightedLoss) -> dict:
    """One update of G on its loss, through an unwrapped, frozen D (no gradient reaches D or C)."""
    if m.D is not None:
        m.D.requires_grad_(False)
    try:
        loss, parts = loss_fn(p)
        m.optG.zero_grad(set_to_none=True)
        m.scaler.scale(loss).backward()
    finally:
        if m.D is not None:
            m.D.requires_grad_(True)
    m.scaler.step(m.optG)
    return {"loss/G": loss.item(), **{f"loss/{k}": v for k, v in parts.items()}}


def train_step(m: Models, Gd: torch.nn.Module, Dd: torch.nn.Module | None, batch: dict, cfg: dict,
               loss_fn: WeightedLoss) -> dict:
    """G's forward, then the D phase on it (detached), then the G phase; returns the step's scalars."""
    p = generator_forward(Gd, batch, cfg, next(m.G.parameters()).device)
    stats = discriminator_step(m, Dd, p, cfg) if Dd is not None else {}
    stats.update(generator_step(m, p, loss_fn))
    m.scaler.update()
    return stats


def _acc(real_out, fake_out) -> float:
    if isinstance(real_out, torch.Tensor):
        return accuracy(real_out, fake_out)
    return accuracy(real_out.combined, fake_out.combined, real_out.space)


# ---------------------------------------------------------------------------------------- validation


@torch.no_grad()
def validate(G: torch.nn.Module, val_sets: dict[str, list[dict]], device: torch.device,
             grid_images: int = 4, D: torch.nn.Module | None = None, select: str = HELDOUT) -> dict:
    """PSNR, SSIM and spectral distance of G's outputs (and of the hazy inputs) per set; with ``D``,
    also how well D (and C, for SSD) tell the ground truth from G's outputs on the held-out pairs
    (:func:`discriminator_accuracy`). ``psnr`` is the score that picks best.pt: the ``select`` set's
    (``mean``: all sets'; a missing set falls back to the mean).

    The image grid shows hazy / output / ground truth for ``grid_images`` pairs, spread over the sets.
    """
    was_training = G.training
    G.eval()
    per_set = max(1, grid_images // max(1, len(val_sets)))
    stats, curves, grid = {}, {}, []
    for name, items in val_sets.items():
        rows = {"psnr": [], "ssim": [], "spec": [], "psnr_hazy": [], "ssim_hazy": []}
        spec_out, spec_gt, fakes = [], [], []
        for it in items:
            hazy = it["hazy"][None].to(device)
            gt = (it["clear"][None].to(device) + 1) / 2
            out = (G(hazy).float().clamp(-1, 1) + 1) / 2
            fakes.append(out[0] * 2 - 1)
            hz = (hazy + 1) / 2
            rows["psnr"].append(psnr(out, gt).item())
            rows["ssim"].append(ssim(out, gt).item())
            rows["spec"].append(spectral_distance(out, gt).item())
            rows["psnr_hazy"].append(psnr(hz, gt).item())
            rows["ssim_hazy"].append(ssim(hz, gt).item())
            spec_out.append(azimuthal_spectrum(out * 2 - 1, normalize=False)[0].cpu())
            spec_gt.append(azimuthal_spectrum(gt * 2 - 1, normalize=False)[0].cpu())
            if len(spec_out) <= per_set:
                grid += [_thumb(hz[0]), _thumb(out[0]), _thumb(gt[0])]
        for k, v in rows.items():
            stats[f"{name}/{k}"] = float(np.mean(v))
        curves[name] = _mean_curves(spec_out, spec_gt)
        if D is not None and name == HELDOUT:
            hazy = torch.stack([it["hazy"] for it in items]).to(device)
            clear = torch.stack([it["clear"] for it in items]).to(device)
            stats |= {f"{name}/{k}": v for k, v in discriminator_accuracy(D, hazy, clear, torch.stack(fakes)).items()}
    names = list(val_sets)
    stats["psnr"] = stats[f"{select}/psnr"] if select in val_sets else float(np.mean([stats[f"{n}/psnr"] for n in names]))
    G.train(was_training)
    return {"scalars": stats, "curves": curves, "grid": grid}


@torch.no_grad()
def discriminator_accuracy(D: torch.nn.Module, hazy: torch.Tensor, clear: torch.Tensor, fake: torch.Tensor,
                           batch: int = 16) -> dict:
    """D's (and for SSD, C's) accuracy and loss on pairs no update has seen, in eval mode.

    ``acc/D``: the combined verdict (D_ss for SSD); ``acc/C``, ``auc/C`` (:func:`~dehaze.losses.ranking_auc`),
    ``loss/C``: the spectral classifier alone (chance: 0.5, 0.5 and 2·ln 2 = 1.386). Restores D's mode afterwards.
    """
    was_training = D.training
    D.eval()
    outs = {"real": [], "fake": []}
    for i in range(0, len(hazy), batch):
        outs["real"].append(D(clear[i:i + batch], cond=hazy[i:i + batch]))
        outs["fake"].append(D(fake[i:i + batch], cond=hazy[i:i + batch]))
    D.train(was_training)
    if isinstance(D, SSDDiscriminator):
        cat = {k: SSDOutput(torch.cat([o.spatial for o in v]), torch.cat([o.spectral for o in v]),
                            torch.cat([o.combined for o in v]), v[0].space) for k, v in outs.items()}
        return {"acc/D": _acc(cat["real"], cat["fake"]), "acc/C": accuracy(cat["real"].spectral, cat["fake"].spectral),
                "auc/C": ranking_auc(cat["real"].spectral, cat["fake"].spectral),
                "loss/C": classifier_loss(cat["real"], cat["fake"]).item()}
    return {"acc/D": accuracy(torch.cat(outs["real"]), torch.cat(outs["fake"]))}


def _thumb(img: torch.Tensor, size: int = 192) -> torch.Tensor:
    return torch.nn.functional.interpolate(img[None].cpu(), size=(size, size), mode="area")[0]


def _mean_curves(outs: list[torch.Tensor], gts: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    n = min(min(len(o) for o in outs), min(len(g) for g in gts))  # sizes may differ between images
    return (torch.stack([o[:n] for o in outs]).mean(0).numpy(), torch.stack([g[:n] for g in gts]).mean(0).numpy())


def spectrum_figure(curves: dict, step: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.5), squeeze=False)
    for ax, (name, (out, gt)) in zip(axes[0], curves.items()):
        f = np.arange(1, len(out) + 1)
        ax.plot(f, gt, label="ground truth", color="black")
        ax.plot(f, out, label="output", color="tab:red")
        ax.set(title=f"{name} (step {step})", xlabel="radius bin", ylabel="mean log |F|")
        ax.legend()
    fig.tight_layout()
    return fig


def log_validation(run: Run, v: dict, step: int, say=print) -> dict:
    """Validation scalars, the spectrum figure and the image grid to the run's logs; returns the scalars."""
    from torchvision.utils import make_grid

    run.logger.scalars(step, v["scalars"], prefix="val")
    if run.env.is_main:  # the last validation's mean spectra, for reports across runs (training/ablation.py)
        curves = {k: {"output": o.tolist(), "ground_truth": g.tolist()} for k, (o, g) in v["curves"].items()}
        with atomic_file(Path(run.dir) / "val_spectra.json") as f:
            f.write(json.dumps({"step": step, "curves": curves}).encode())
    run.logger.figure("val/spectrum", spectrum_figure(v["curves"], step), step)
    run.logger.image("val/hazy_output_gt", make_grid(v["grid"], nrow=3, padding=2), step)
    say(f"step {step}: " + "  ".join(f"{k} {x:.3f}" for k, x in v["scalars"].items()
                                     if k.endswith(("/psnr", "/ssim", "psnr_hazy", "acc/C", "acc/D"))))
    return v["scalars"]


# ---------------------------------------------------------------------------------------- training


def train(cfg: dict, resume: bool | str = False) -> dict:
    """Run (or continue) one training run; returns the last validation scalars."""
    check_config(cfg)
    env = dist.setup(cfg["device"])
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    dist.seed_all(cfg["seed"], env.rank)
    m = build_models(cfg, env.device)
    train_set = build_train_set(cfg)
    val_sets = load_val_sets(cfg, m.G.multiple) if env.is_main and cfg["val"]["dirs"] else {}
    with Run(cfg, cfg["out"], env, resume=resume) as run:
        state = run.load()
        start, best, last_val = _start(state, cfg, m, run.resume_path)
        batches = dist.step_batches(train_set, cfg["train"]["batch"], env, cfg["seed"], start,
                                    cfg["data"]["workers"], rng=state and state["rng"], with_epoch=True)
        if env.is_main:
            n_d = count_parameters(m.D) if m.D is not None else 0
            print(f"mode={cfg['mode']} G={count_parameters(m.G) / 1e6:.2f}M D={n_d / 1e6:.2f}M device={env.device} "
                  f"world={env.world_size} train_items={len(train_set)} out={run.dir}", file=sys.stderr)
        last_val = _loop(cfg, run, m, batches, val_sets, start, best, last_val)
    dist.cleanup()
    return last_val


def _loop(cfg: dict, run: Run, m: Models, batches, val_sets: dict, start: int, best: float, last_val: dict) -> dict:
    """Steps ``start`` .. ``train.steps``: LR schedule, D and G phases, EMA, logs, validation, checkpoints."""
    tc, env = cfg["train"], run.env
    Gd = dist.wrap_ddp(m.G, env)
    Dd = dist.wrap_ddp(m.D, env) if m.D is not None else None
    loss_fn = build_g_loss(cfg, m.D, env.device)
    bar, meter = progress(tc["steps"], start, env.is_main), Meter()
    for step in range(start, tc["steps"]):
        scale = linear_decay(step, tc["steps"], int(tc["decay_start"] * tc["steps"]))
        m.set_lr(tc["lr_G"] * scale, tc["lr_D"] * scale)
        meter.add(train_step(m, Gd, Dd, next(batches), cfg, loss_fn))
        m.ema.update(m.G, step)
        meter.step()
        bar.update(1)
        done = step + 1
        if done % cfg["log"]["every"] == 0 or done == tc["steps"]:
            lrs = {"lr/G": m.optG.param_groups[0]["lr"]} | ({"lr/D": m.optD.param_groups[0]["lr"]} if m.optD else {})
            run.log(done, meter.pop() | lrs, bar)
        is_val = bool(val_sets) and (done % cfg["val"]["every"] == 0 or done == tc["steps"])
        if is_val:
            v = validate(m.ema.module, val_sets, env.device, cfg["val"]["grid_images"], D=m.D,
                         select=cfg["val"]["select"])
            last_val = log_validation(run, v, done, bar.write)
        is_best = is_val and last_val["psnr"] > best
        best = max(best, last_val["psnr"]) if is_val else best
        if run.end_step(done, tc["steps"], cfg["log"]["ckpt_every"],
                        partial(m.state, cfg, done, best_psnr=best, metrics=last_val),
                        best=is_best, snapshot_every=cfg["log"]["snapshot_every"], say=bar.write):
            break
    bar.close()
    return last_val


def _start(state: dict | None, cfg: dict, m: Models, path) -> tuple[int, float, dict]:
    """(first step, best validation PSNR, last validation scalars): from the checkpoint to resume,
    else from step 0 (after a warm start from ``train.init`` when set)."""
    if state is not None:
        m.load(state, path)
        return int(state["step"]), float(state["best_psnr"]), state.get("metrics") or {}
    if cfg["train"]["init"]:
        _warm_start(cfg["train"]["init"], cfg["mode"], m)
    return 0, -math.inf, {}


def _warm_start(init, mode: str, m: Models) -> None:
    """``train.init``: G and G_ema from the averaged (EMA) weights of an earlier run's checkpoints, D (and C)
    from the last of them when it was trained in the same mode; optimisers and step start afresh."""
    from dehaze.errors import CheckpointError
    from dehaze.nets import average_generators, weight_layout
    from dehaze.train.checkpoint import load_checkpoint, load_state_dict_checked

    paths = [init] if isinstance(init, str) else list(init)
    src, meta = average_generators(paths)
    if weight_layout(meta["G_config"]) != weight_layout(m.G.config):  # older configs' t_refine: no weights
        raise CheckpointError(f"train.init: {paths[-1]} has another generator ({meta['G_config']}) than "
                              f"the config's ({m.G.config})")
    m.G.load_state_dict(src.state_dict())
    m.ema.reset(m.G)
    if m.D is not None:
        last = load_checkpoint(paths[-1])
        if last.get("D") is not None and (last.get("config") or {}).get("mode") == mode:
            load_state_dict_checked(m.D, last["D"], "discriminator", paths[-1])


# ---------------------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="train_dehaze.py", description="Train a dehazing generator "
                                "(l1, pix2pix or SSD-GAN modes).")
    p.add_argument("--config", "-c", type=Path, default=None, help="YAML config (default: built-in defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set train.steps=500 (repeatable)")
    p.add_argument("--mode", choices=MODES, help="shortcut for --set mode=...")
    p.add_argument("--out", help="shortcut for --set out=...")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CKPT",
                   help="continue from OUT/last.pt (or from the checkpoint given)")
    p.add_argument("--print-config", action="store_true", help="print the merged config and exit")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_reporting_errors(_run, args)


def _run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.mode:
        overrides.append(f"mode={args.mode}")
    if args.out:
        overrides.append(f"out={args.out}")
    cfg = read_config(args.config, overrides)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg, sort_keys=False))
        return 0
    train(cfg, resume=args.resume)
    return 0
