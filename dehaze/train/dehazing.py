"""The dehazing trainer: U-Net G against a conditional PatchGAN D, optionally SSD-enhanced.

Modes (``mode`` in the config):

=============  ===================================================================
``l1``         G alone, reconstruction losses only.
``pix2pix``    adversarial loss from a conditional PatchGAN D (+ λ_L1·L1).
``ssd``        D_ss = λ·D + (1−λ)·C(φ(x)), φ the azimuthal spectrum (SSD-GAN eq. 6).
``ssd-phase``  as ``ssd`` with phase-aware spectral features.
``ssd-full``   as ``ssd`` with a 2-D convolutional C over the full log-magnitude map.
=============  ===================================================================

Entry point: ``python training/train_dehaze.py --config training/configs/small.yaml``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dehaze.errors import ConfigError, run_reporting_errors
from dehaze.losses import (
    GAN_LOSSES,
    accuracy,
    classifier_loss,
    d_loss,
    g_loss,
    l1_loss,
    spectral_regularizer,
)
from dehaze.metrics import psnr, spectral_distance, ssim
from dehaze.nets import (
    PatchDiscriminator,
    SSDDiscriminator,
    UNetGenerator,
    build_spectral_classifier,
    count_parameters,
)
from dehaze.nets.unet import TwoScale
from dehaze.spectral import azimuthal_spectrum
from dehaze.train import dist
from dehaze.train.checkpoint import load_state_dict_checked, rng_state, set_rng_state
from dehaze.train.config import load_config, read_defaults
from dehaze.train.logger import progress
from dehaze.train.run import Run, autocast, ema_update, grad_scaler, linear_decay, make_ema

MODES = ("l1", "pix2pix", "ssd", "ssd-phase", "ssd-full")
FEATURE_OF_MODE = {"ssd": "azimuthal", "ssd-phase": "phase", "ssd-full": "full"}
# Every setting with its default: dehaze/train/defaults.yaml (package data), the one source of defaults.
DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")
DEFAULTS: dict = read_defaults("dehaze.train")

# Settings that were removed (docs/ablation.md, "Removed experiments") -> the value that meant "off":
# the config.yaml of older runs still loads when it has them at that value.
RETIRED = {"model.G.airlight_head": "mean", "model.C.hidden": 0, "loss.ssim": 0.0, "loss.freq_l1": 0.0,
           "loss.d_transform": "none", "loss.hf_radius": 0.25}


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
    for k in ("l1", "adv", "spectral_reg", "airlight", "transmission"):
        if not isinstance(cfg["loss"][k], int | float) or cfg["loss"][k] < 0:
            raise ConfigError(f"loss.{k} must be a number >= 0, got {cfg['loss'][k]!r}")
    if not 0 <= cfg["loss"]["lam"] <= 1:
        raise ConfigError(f"loss.lam must be in [0, 1], got {cfg['loss']['lam']}")
    if not cfg["data"]["clean"] and not cfg["data"]["paired"]:
        raise ConfigError("no training data: set data.clean (clean photos) or data.paired (hazy/clear pairs)")
    for k in ("steps", "batch"):
        if int(cfg["train"][k]) < 1:
            raise ConfigError(f"train.{k} must be positive")
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
    k = cfg["data"]["two_scale"]
    if isinstance(k, bool) or not isinstance(k, int) or k < 0 or k == 1:
        raise ConfigError(f"data.two_scale must be 0 (off) or a whole factor >= 2, got {k!r}")
    if k and cfg["model"]["G"]["head"] != "asm":
        raise ConfigError("data.two_scale needs model.G.head=asm (t is what is brought to full size)")
    if k and cfg["data"]["paired"]:
        raise ConfigError("data.two_scale works on synthetic haze only (data.clean), not data.paired")
    m = 2 ** int(cfg["model"]["G"]["depth"])
    if cfg["data"]["crop"] % m:
        raise ConfigError(f"data.crop={cfg['data']['crop']} must be a multiple of 2**depth = {m}")


def asm_supervised(cfg: dict) -> bool:
    """Whether the asm head's A and t are supervised with the synthesised ones."""
    return bool(cfg["loss"]["airlight"] or cfg["loss"]["transmission"])


# ---------------------------------------------------------------------------------------- data


def build_train_set(cfg: dict):
    from torch.utils.data import ConcatDataset

    from dehaze.data import PairedFolderDataset, SyntheticHazeDataset

    d = cfg["data"]
    parts = []
    if d["clean"]:
        parts.append(SyntheticHazeDataset(d["clean"], d["crop"] * max(1, d["two_scale"]), build_haze(d["haze"]),
                                          samples_per_epoch=d["samples_per_epoch"], seed=cfg["seed"],
                                          cache=d["cache"], with_asm=asm_supervised(cfg),
                                          scale=tuple(d["scale"])))
    for root in d["paired"]:
        parts.append(PairedFolderDataset(root, crop=d["crop"], augment=True, seed=cfg["seed"]))
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def build_haze(spec):
    """Haze ranges from the config: a preset name, a mapping (``preset`` + fields), or a list of them
    (a mixture; an optional ``weight`` per member sets how often it is drawn, see
    :class:`~dehaze.haze.HazeMixture`).

    Example:
        >>> build_haze([{"preset": "indoor", "max_optical_depth": 2.0}, {"preset": "outdoor"}]).members[0].max_optical_depth
        2.0
    """
    from dehaze.haze import HazeMixture, HazeSynthesizer, haze_preset

    if isinstance(spec, str):
        return haze_preset(spec)
    if isinstance(spec, dict):
        return HazeSynthesizer.from_dict(spec)
    if isinstance(spec, list) and spec and all(isinstance(m, dict) for m in spec):
        weights = tuple(float(m.get("weight", 1.0)) for m in spec)  # how often each member is drawn
        members = tuple(HazeSynthesizer.from_dict({k: v for k, v in m.items() if k != "weight"}) for m in spec)
        return HazeMixture(members, weights)
    raise ConfigError(f"data.haze must be a preset name, a mapping of haze ranges or a list of them, got {spec!r}")


def load_val_sets(cfg: dict, multiple: int) -> dict[str, list[dict]]:
    """Validation pairs per folder, full images (cropped to the size multiple), loaded once."""
    from dehaze.data import PairedFolderDataset

    out = {}
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
        C = build_spectral_classifier(feature, crop, crop, conv_width=cfg["model"]["C"]["conv_width"])
        D = SSDDiscriminator(D, C, lam=cfg["loss"]["lam"], feature=feature, combine=cfg["loss"]["combine"])
    return G, D.to(device)


# ---------------------------------------------------------------------------------------- validation


@torch.no_grad()
def validate(G: torch.nn.Module, val_sets: dict[str, list[dict]], device: torch.device,
             grid_images: int = 4) -> dict:
    """PSNR, SSIM and spectral distance of G's outputs (and of the hazy inputs) per folder.

    The image grid shows hazy / output / ground truth for ``grid_images`` pairs, spread over the folders.
    """
    G.eval()
    per_set = max(1, grid_images // max(1, len(val_sets)))
    stats, curves, grid = {}, {}, []
    for name, items in val_sets.items():
        rows = {"psnr": [], "ssim": [], "spec": [], "psnr_hazy": [], "ssim_hazy": []}
        spec_out, spec_gt = [], []
        for it in items:
            hazy = it["hazy"][None].to(device)
            gt = (it["clear"][None].to(device) + 1) / 2
            out = (G(hazy).float().clamp(-1, 1) + 1) / 2
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
    stats["psnr"] = float(np.mean([stats[f"{n}/psnr"] for n in val_sets]))
    G.train()
    return {"scalars": stats, "curves": curves, "grid": grid}


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


# ---------------------------------------------------------------------------------------- training


def train(cfg: dict, resume: bool | str = False) -> dict:
    """Run (or continue) one training run; returns the last validation scalars."""
    check_config(cfg)
    env = dist.setup(cfg["device"])
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    dist.seed_all(cfg["seed"], env.rank)
    device, tc, lc = env.device, cfg["train"], cfg["loss"]
    use_amp = bool(cfg["amp"]) and device.type == "cuda"
    sup_asm = asm_supervised(cfg)

    G, D = build_nets(cfg, device)
    G_ema = make_ema(G)
    optG = torch.optim.Adam(G.parameters(), lr=tc["lr_G"], betas=tuple(tc["betas"]))
    optD = torch.optim.Adam(D.parameters(), lr=tc["lr_D"], betas=tuple(tc["betas"])) if D else None
    scaler = grad_scaler(device, use_amp)
    train_set = build_train_set(cfg)
    val_sets = load_val_sets(cfg, G.multiple) if env.is_main and cfg["val"]["dirs"] else {}

    with Run(cfg, cfg["out"], env, resume=resume) as run:
        start, best, last_val = 0, -math.inf, {}
        state = run.load()
        if state is not None:
            start, best = _restore(state, G, D, G_ema, optG, optD, scaler, run.resume_path)
        elif tc["init"]:
            _warm_start(tc["init"], cfg["mode"], G, D, G_ema)
        k2 = cfg["data"]["two_scale"]
        Gd, Dd = dist.wrap_ddp(TwoScale(G) if k2 else G, env), (dist.wrap_ddp(D, env) if D else None)
        loader = dist.make_loader(train_set, tc["batch"], env, cfg["data"]["workers"], seed=cfg["seed"] + start)
        batches = dist.infinite(loader)
        if env.is_main:
            n_d = count_parameters(D) if D else 0
            print(f"mode={cfg['mode']} G={count_parameters(G) / 1e6:.2f}M D={n_d / 1e6:.2f}M device={device} "
                  f"world={env.world_size} train_items={len(train_set)} out={run.dir}", file=sys.stderr)
        bar = progress(tc["steps"], start, env.is_main)
        t_last, stats = time.perf_counter(), {}

        step = start
        for step in range(start, tc["steps"]):
            lr_scale = linear_decay(step, tc["steps"], int(tc["decay_start"] * tc["steps"]))
            for opt, lr in ((optG, tc["lr_G"]), (optD, tc["lr_D"])):
                if opt is not None:
                    for group in opt.param_groups:
                        group["lr"] = lr * lr_scale
            batch = next(batches)
            hazy, clear = batch["hazy"].to(device, non_blocking=True), batch["clear"].to(device, non_blocking=True)
            t_true = batch["t"].to(device) if sup_asm else None

            # ---- G forward (once; D's step sees it detached)
            if k2:  # two scales, as inference: G sees the shrunk crop, L1 on the full-size output
                hazy_full, clear_full = hazy, clear
                hazy, clear = F.avg_pool2d(hazy_full, k2), F.avg_pool2d(clear_full, k2)
                with autocast(device, use_amp):
                    fake_full, t, A = Gd(hazy, hazy_full)
                fake = F.avg_pool2d(fake_full, k2)  # what D and C judge: the working size, as in one scale
                t_true = F.avg_pool2d(t_true, k2) if sup_asm else None
            else:
                with autocast(device, use_amp):
                    fake, t, A = Gd(hazy, return_asm=True) if sup_asm else (Gd(hazy), None, None)
                fake_full, clear_full = fake, clear

            # ---- D (and C) step
            if Dd is not None:
                with autocast(device, use_amp):
                    real_out, fake_out = Dd(clear, cond=hazy), Dd(fake.detach(), cond=hazy)
                loss_D = d_loss(real_out, fake_out, lc["gan"])
                loss_C = classifier_loss(real_out, fake_out) if isinstance(D, SSDDiscriminator) else None
                optD.zero_grad(set_to_none=True)
                scaler.scale(loss_D + (loss_C if loss_C is not None else 0)).backward()
                scaler.step(optD)
                stats["loss/D"] = loss_D.item()
                stats["acc/D"] = _acc(real_out, fake_out)
                if loss_C is not None:
                    stats["loss/C"] = loss_C.item()
                    stats["acc/C"] = accuracy(real_out.spectral, fake_out.spectral)

            # ---- G step (through an unwrapped, frozen D: no gradient accumulates in D)
            loss_G = lc["l1"] * l1_loss(fake_full.float(), clear_full)
            stats["loss/G_L1"] = loss_G.item() / max(lc["l1"], 1e-12)
            if D is not None:
                D.requires_grad_(False)
                with autocast(device, use_amp):
                    adv = g_loss(D(fake, cond=hazy), lc["gan"])
                D.requires_grad_(True)
                loss_G = loss_G + lc["adv"] * adv
                stats["loss/G_adv"] = adv.item()
            if lc["spectral_reg"]:
                reg = spectral_regularizer(fake, clear, paired=True)
                loss_G = loss_G + lc["spectral_reg"] * reg
                stats["loss/G_spec"] = reg.item()
            if sup_asm:  # the physical decomposition: A and t are not identifiable from J alone
                err_A = (A.float().flatten(1) - batch["A"].to(device)).abs().mean()
                err_t = (t.float() - t_true).abs().mean()
                loss_G = loss_G + lc["airlight"] * err_A + lc["transmission"] * err_t
                stats["loss/G_A"], stats["loss/G_t"] = err_A.item(), err_t.item()
            optG.zero_grad(set_to_none=True)
            scaler.scale(loss_G).backward()
            scaler.step(optG)
            scaler.update()
            stats["loss/G"] = loss_G.item()
            ema_update(G_ema, G, tc["ema"] if step >= tc["ema_start"] else 0.0)

            done = step + 1
            bar.update(1)
            if done % cfg["log"]["every"] == 0 or done == tc["steps"]:
                now = time.perf_counter()
                stats["time/step_s"] = (now - t_last) / cfg["log"]["every"]
                stats["lr/G"] = optG.param_groups[0]["lr"]
                if optD is not None:
                    stats["lr/D"] = optD.param_groups[0]["lr"]
                t_last = now
                row = dist.all_reduce_mean(stats, env)
                run.logger.scalars(done, row)
                bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in row.items() if k.startswith("loss/")})
            is_val = val_sets and (done % cfg["val"]["every"] == 0 or done == tc["steps"])
            if is_val:
                v = validate(G_ema, val_sets, device, cfg["val"]["grid_images"])
                last_val = v["scalars"]
                run.logger.scalars(done, last_val, prefix="val")
                run.logger.figure("val/spectrum", spectrum_figure(v["curves"], done), done)
                from torchvision.utils import make_grid

                run.logger.image("val/hazy_output_gt", make_grid(v["grid"], nrow=3, padding=2), done)
                bar.write(f"step {done}: " + "  ".join(f"{k} {x:.3f}" for k, x in last_val.items()
                                                       if k.endswith(("/psnr", "/ssim", "psnr_hazy"))))
            is_best = bool(is_val) and last_val.get("psnr", -math.inf) > best
            best = max(best, last_val.get("psnr", -math.inf)) if is_val else best
            if run.end_step(done, tc["steps"], cfg["log"]["ckpt_every"],
                            partial(_state, cfg, done, G, D, G_ema, optG, optD, scaler, best, last_val),
                            best=is_best, snapshot_every=cfg["log"]["snapshot_every"], say=bar.write):
                break
        bar.close()
    dist.cleanup()
    return last_val


def _acc(real_out, fake_out) -> float:
    if isinstance(real_out, torch.Tensor):
        return accuracy(real_out, fake_out)
    return accuracy(real_out.combined, fake_out.combined, real_out.space)


def _state(cfg, step, G, D, G_ema, optG, optD, scaler, best, metrics) -> dict:
    return {
        "step": step, "config": cfg, "G_config": G.config, "G": G.state_dict(), "G_ema": G_ema.state_dict(),
        "D": D.state_dict() if D is not None else None, "optG": optG.state_dict(),
        "optD": optD.state_dict() if optD is not None else None, "scaler": scaler.state_dict(),
        "best_psnr": best, "metrics": metrics, "rng": rng_state(),
    }


def _warm_start(init, mode: str, G, D, G_ema) -> None:
    """``train.init``: G and G_ema from the averaged (EMA) weights of an earlier run's checkpoints, D (and C)
    from the last of them when it was trained in the same mode; optimisers and step start afresh."""
    from dehaze.errors import CheckpointError
    from dehaze.nets import average_generators, weight_layout
    from dehaze.train.checkpoint import load_checkpoint

    paths = [init] if isinstance(init, str) else list(init)
    src, meta = average_generators(paths)
    if weight_layout(meta["G_config"]) != weight_layout(G.config):  # t_refine may differ: it has no weights
        raise CheckpointError(f"train.init: {paths[-1]} has another generator ({meta['G_config']}) than "
                              f"the config's ({G.config})")
    G.load_state_dict(src.state_dict())
    G_ema.load_state_dict(src.state_dict())
    if D is not None:
        last = load_checkpoint(paths[-1])
        if last.get("D") is not None and (last.get("config") or {}).get("mode") == mode:
            load_state_dict_checked(D, last["D"], "discriminator", paths[-1])


def _restore(state, G, D, G_ema, optG, optD, scaler, path) -> tuple[int, float]:
    from dehaze.errors import CheckpointError

    if state.get("G_config") != G.config:
        raise CheckpointError(f"{path}: the checkpoint's generator ({state.get('G_config')}) differs from "
                              f"the config's ({G.config})")
    if (state.get("D") is None) != (D is None):
        raise CheckpointError(f"{path}: the checkpoint's mode ({state['config']['mode']}) has a different "
                              "discriminator setup than this config's")
    load_state_dict_checked(G, state["G"], "generator", path)
    load_state_dict_checked(G_ema, state["G_ema"], "EMA generator", path)
    if D is not None:
        load_state_dict_checked(D, state["D"], "discriminator", path)
        optD.load_state_dict(state["optD"])
    optG.load_state_dict(state["optG"])
    scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return int(state["step"]), float(state["best_psnr"])


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
