"""The unconditional GAN trainer: SNGAN, SNGAN+REG, SSD-SNGAN(+REG), StyleGAN and SSD-StyleGAN.

=================  =====================================================================
``sngan``          ResNet SNGAN, hinge loss, n_dis=5 (Mimicry / the SSD-GAN paper's setup)
``sngan-reg``      + the spectral regulariser on G (Durall et al. 2020)
``ssd-sngan``      D_ss = λ·D + (1−λ)·C(φ(x)) in logit space (hinge; official code); under the hinge loss C
                   cannot reach G there, ``loss.combine=weighted`` lets it (:func:`dehaze.nets.ssd.ssd_combine`)
``ssd-sngan-reg``  both
``stylegan``       small StyleGAN, non-saturating loss + R1
``ssd-stylegan``   D_ss in probability space (eq. 6), R1 on the spatial logits; the official form:
                   ``loss.combine=logit loss.c_scale=0.4 loss.c_loss=hinge``
=================  =====================================================================

Per step (``train.steps`` counts generator steps): ``n_dis`` discriminator steps, each on a
fresh real batch and fresh fakes, where D's adversarial loss and C's own loss (eq. 5) are
summed and minimised together (C's input is detached and D_ss uses C's verdict detached,
so each term trains only its own network); then one generator step through the frozen
D_ss. G_ema (StyleGAN2-ADA's schedule: half-life ``ema_kimg`` thousand images, ramped up
over the first steps) is what evaluation uses, with BatchNorm statistics re-estimated. The loop
has the dehazing trainer's shape (:mod:`dehaze.train.dehazing`): :func:`train_step` runs the D and
G phases, the generator's loss is a :class:`~dehaze.losses.WeightedLoss`, and
:class:`~dehaze.train.run.Models`, :class:`~dehaze.train.run.EMA` and the step-indexed sampler
(:func:`~dehaze.train.dist.step_batches`) are shared, so a resumed run continues exactly.

Entry point: ``python training/train_unconditional.py --model ssd-sngan --data DIR``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from functools import partial
from pathlib import Path

import torch
import torch.distributed as tdist

from dehaze import gan
from dehaze.errors import CheckpointError, ConfigError, run_reporting_errors
from dehaze.gan.data import load_dataset
from dehaze.gan.evaluate import RealReference, evaluate, real_images, standing_stats
from dehaze.losses import (
    GAN_LOSSES,
    WeightedLoss,
    accuracy,
    classifier_loss,
    d_loss,
    g_loss,
    r1_penalty,
    spectral_regularizer,
)
from dehaze.metrics.gan import load_kid_extractor
from dehaze.nets import SSDDiscriminator, SSDOutput, build_spectral_classifier, count_parameters
from dehaze.nets.ssd import COMBINES
from dehaze.train import dist
from dehaze.train.config import load_config, read_defaults
from dehaze.train.logger import progress
from dehaze.train.run import EMA, Meter, Models, Run, half_life_decay, linear_decay

MODELS = ("sngan", "sngan-reg", "ssd-sngan", "ssd-sngan-reg", "stylegan", "ssd-stylegan")
FEATURES = ("azimuthal", "phase", "full")

# Every setting with its default: dehaze/gan/defaults.yaml (package data); ``null`` means "the
# architecture's default" (ARCH_DEFAULTS).
DEFAULTS: dict = read_defaults("dehaze.gan")

ARCH_DEFAULTS = {
    "sngan": {"gan": "hinge", "n_dis": 5, "lr_G": 2e-4, "lr_D": 2e-4, "betas": [0.0, 0.9], "decay": "linear",
              "mixing": 0.0},
    "stylegan": {"gan": "nonsat", "n_dis": 1, "lr_G": 2e-3, "lr_D": 2e-3, "betas": [0.0, 0.99], "decay": "none",
                 "mixing": 0.9},
}


def arch_of(model: str) -> str:
    return "stylegan" if model.endswith("stylegan") else "sngan"


def resolve_config(cfg: dict) -> dict:
    """Fill the ``null`` settings with the architecture's defaults and check values (ConfigError)."""
    import copy

    cfg = copy.deepcopy(cfg)
    if cfg["model"] not in MODELS:
        raise ConfigError(f"model '{cfg['model']}' is not one of {', '.join(MODELS)}")
    if cfg["feature"] not in FEATURES:
        raise ConfigError(f"feature '{cfg['feature']}' is not one of {', '.join(FEATURES)}")
    arch = arch_of(cfg["model"])
    ad = ARCH_DEFAULTS[arch]
    tc, lc, nc = cfg["train"], cfg["loss"], cfg["net"]
    for k in ("n_dis", "lr_G", "lr_D", "betas", "decay", "mixing"):
        if tc[k] is None:
            tc[k] = ad[k]
    if lc["gan"] is None:
        lc["gan"] = ad["gan"]
    if lc["gan"] not in GAN_LOSSES:
        raise ConfigError(f"loss.gan '{lc['gan']}' is not one of {', '.join(GAN_LOSSES)}")
    if lc["combine"] is None:
        lc["combine"] = "logit" if lc["gan"] == "hinge" else "prob"
    if lc["combine"] not in COMBINES:
        raise ConfigError(f"loss.combine must be one of {', '.join(COMBINES)}")
    if lc["gan"] == "hinge" and lc["combine"] == "prob":
        raise ConfigError("loss.gan=hinge needs loss.combine=logit or weighted (hinge works on logits)")
    if lc["c_loss"] not in ("bce", "hinge"):
        raise ConfigError("loss.c_loss must be bce or hinge")
    if not 0 <= lc["lam"] <= 1:
        raise ConfigError(f"loss.lam must be in [0, 1], got {lc['lam']}")
    if lc["r1_gamma"] is None:
        res = cfg["data"]["resolution"]
        lc["r1_gamma"] = 0.0002 * res ** 2 / tc["batch"] if arch == "stylegan" else 0.0
    if tc["decay"] not in ("linear", "none"):
        raise ConfigError("train.decay must be linear or none")
    for k in ("steps", "batch", "n_dis"):
        if int(tc[k]) < 1:
            raise ConfigError(f"train.{k} must be positive")
    if int(lc["r1_every"]) < 1:
        raise ConfigError("loss.r1_every must be positive")
    if cfg["eval"]["generator"] not in ("ema", "G"):
        raise ConfigError("eval.generator must be ema or G")
    if str(cfg["eval"]["fid"]).lower() not in ("auto", "true", "false"):
        raise ConfigError("eval.fid must be auto, true or false")
    if nc["width"] is not None:
        nc["ngf"] = nc["ngf"] or nc["width"]
        nc["ndf"] = nc["ndf"] or nc["width"]
    if not cfg["data"]["path"]:
        raise ConfigError("no training data: pass --data (an image folder, or cifar10/cifar100/stl10 with --data-root)")
    return cfg


# ---------------------------------------------------------------------------------------- nets


def build_nets(cfg: dict):
    """G and D (D_ss for the SSD models) for a resolved config."""
    nc, model = cfg["net"], cfg["model"]
    res = int(cfg["data"]["resolution"])
    G, D = gan.build_nets(arch_of(model), res, nz=nc["nz"], ngf=nc["ngf"], ndf=nc["ndf"], w_dim=nc["w_dim"],
                          mapping_layers=nc["mapping_layers"])
    if model.startswith("ssd-"):
        C = build_spectral_classifier(cfg["feature"], res, res, hidden=nc["c_hidden"], conv_width=nc["c_width"],
                                      drop_high=nc["drop_high"])
        D = SSDDiscriminator(D, C, lam=cfg["loss"]["lam"], feature=cfg["feature"], combine=cfg["loss"]["combine"],
                             drop_high=nc["drop_high"], c_scale=cfg["loss"]["c_scale"])
    return G, D


def build_models(cfg: dict, env: dist.DistEnv) -> Models:
    """G, D, G's EMA (StyleGAN2-ADA's half-life ``train.ema_kimg``) and Adam for both, on the device."""
    G, D = build_nets(cfg)
    G, D, tc = G.to(env.device), D.to(env.device), cfg["train"]
    betas = tuple(float(b) for b in tc["betas"])
    ema = EMA(G, half_life_decay(tc["ema_kimg"], tc["ema_rampup"], tc["batch"] * env.world_size))
    return Models(G, D, ema, torch.optim.Adam(G.parameters(), lr=tc["lr_G"], betas=betas),
                  torch.optim.Adam(D.parameters(), lr=tc["lr_D"], betas=betas))


def spatial(out: torch.Tensor | SSDOutput) -> torch.Tensor:
    """D's own logits (for R1 and logging)."""
    return out.spatial if isinstance(out, SSDOutput) else out


def _c_loss(real: SSDOutput, fake: SSDOutput, kind: str, scale: float = 1.0) -> torch.Tensor:
    """C's own loss on its logit as D_ss uses it, ``scale·C`` (the official SSD-StyleGAN trains C's hinge
    on 0.4·C); ``hinge`` as the official code, ``bce`` as eq. 5."""
    r, f = scale * real.spectral, scale * fake.spectral
    if kind == "hinge":
        return d_loss(r, f, "hinge")
    return classifier_loss(r, f)


# ---------------------------------------------------------------------------------------- steps


def _sync_grads(module: torch.nn.Module, env: dist.DistEnv) -> None:
    """Average gradients over processes (one flat all-reduce); a no-op without torchrun.

    Used instead of DDP wrappers: a GAN step runs D several times per backward, computes
    R1's gradient of a gradient, and leaves C without gradient in the G step, none of
    which DDP's bucketed reducer handles without special flags.
    """
    if not env.distributed:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    tdist.all_reduce(flat)
    flat /= env.world_size
    i = 0
    for g in grads:
        g.copy_(flat[i:i + g.numel()].view_as(g))
        i += g.numel()


def _broadcast(module: torch.nn.Module, env: dist.DistEnv) -> None:
    """Make every process start from rank 0's weights and buffers."""
    if env.distributed:
        for t in list(module.parameters()) + list(module.buffers()):
            tdist.broadcast(t.data, src=0)


def discriminator_step(G, D, optD, real: torch.Tensor, cfg: dict, r1: bool = False,
                       env: dist.DistEnv | None = None) -> dict:
    """One D (and C) update on a real batch and fresh fakes; returns scalar stats."""
    lc = cfg["loss"]
    with torch.no_grad():
        fake = G(G.noise(real.shape[0], real.device))
    if r1:
        real = real.detach().requires_grad_(True)
    out_r, out_f = D(real), D(fake)
    loss_D = d_loss(out_r, out_f, lc["gan"])
    loss = loss_D
    stats = {"loss/D": loss_D.item(), "D/real": spatial(out_r).mean().item(), "D/fake": spatial(out_f).mean().item()}
    if isinstance(out_r, SSDOutput):
        loss_C = _c_loss(out_r, out_f, lc["c_loss"], lc["c_scale"])
        loss = loss + loss_C
        stats["loss/C"] = loss_C.item()
        stats["acc/C"] = accuracy(out_r.spectral, out_f.spectral)
    if r1:
        pen = r1_penalty(spatial(out_r), real)
        loss = loss + 0.5 * lc["r1_gamma"] * lc["r1_every"] * pen  # lazy regularisation
        stats["loss/R1"] = pen.item()
    _update(D, optD, loss, env)
    return stats


def _update(module: torch.nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor,
            env: dist.DistEnv | None) -> None:
    """Backward, average gradients over ranks (when distributed), step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if env is not None:
        _sync_grads(module, env)
    opt.step()


def build_g_loss(cfg: dict) -> WeightedLoss:
    """The generator's loss from ``{name: weight}``: the adversarial term (weight 1, logged as ``loss/G``)
    and, for the -reg models, the spectral regulariser (``loss.reg_weight``); terms of ``(D, fake, real)``."""
    gan_kind, drop = cfg["loss"]["gan"], cfg["net"]["drop_high"]
    terms = {"adv": ("G", lambda D, fake, real: g_loss(D(fake), gan_kind)),
             "spectral_reg": ("G_spec", lambda D, fake, real: spectral_regularizer(fake, real, paired=False,
                                                                                    drop_high=drop))}
    reg = cfg["loss"]["reg_weight"] if cfg["model"].endswith("-reg") else 0.0
    return WeightedLoss({"adv": 1.0, "spectral_reg": reg}, terms)


def generator_step(G, D, optG, real: torch.Tensor, cfg: dict, env: dist.DistEnv | None = None,
                   loss_fn: WeightedLoss | None = None) -> dict:
    """One G update through the frozen D (D_ss) on :func:`build_g_loss` (built here when not given)."""
    loss_fn = loss_fn or build_g_loss(cfg)
    D.requires_grad_(False)
    try:
        kw = {"mixing": cfg["train"]["mixing"]} if cfg["train"]["mixing"] else {}
        fake = G(G.noise(real.shape[0], real.device), **kw)
        loss, parts = loss_fn(D, fake, real)
        _update(G, optG, loss, env)
    finally:
        D.requires_grad_(True)
    return {f"loss/{k}": v for k, v in parts.items()}


def train_step(m: Models, batches, cfg: dict, step: int, env: dist.DistEnv, loss_fn: WeightedLoss) -> list[dict]:
    """``train.n_dis`` D phases, each on a fresh real batch and fresh fakes (lazy R1 on the first of every
    ``loss.r1_every``-th step), then one G phase; returns each phase's scalars."""
    out = []
    for i in range(cfg["train"]["n_dis"]):
        real = next(batches).to(env.device, non_blocking=True)
        r1 = cfg["loss"]["r1_gamma"] > 0 and i == 0 and step % cfg["loss"]["r1_every"] == 0
        out.append(discriminator_step(m.G, m.D, m.optD, real, cfg, r1=r1, env=env))
    out.append(generator_step(m.G, m.D, m.optG, real, cfg, env=env, loss_fn=loss_fn))
    return out


# ---------------------------------------------------------------------------------------- training


def _inception(cfg: dict, device):
    """The FID feature extractor, or None (with the reason) when eval.fid is auto and no weights are found.

    Weights named explicitly (``--inception`` / ``eval.inception`` / ``$DEHAZE_INCEPTION``) must exist:
    only the search of the torch hub cache may come up empty.
    """
    from dehaze.metrics.gan import INCEPTION_ENV, InceptionWeightsError, load_inception

    mode = str(cfg["eval"]["fid"]).lower()
    if mode == "false":
        return None, "FID disabled (eval.fid=false)"
    try:
        return load_inception(cfg["eval"]["inception"], device), ""
    except InceptionWeightsError as exc:
        if mode == "true" or cfg["eval"]["inception"] or os.environ.get(INCEPTION_ENV):
            raise
        return None, f"FID/KID skipped: {exc}"


def check_eval_files(cfg: dict) -> None:
    """Fail (one line naming the file) when a weights file named in ``eval`` is missing: run before training."""
    from dehaze.metrics.gan import INCEPTION_ENV, find_inception_weights, load_kid_extractor

    if str(cfg["eval"]["fid"]).lower() != "false" and (cfg["eval"]["inception"] or os.environ.get(INCEPTION_ENV)):
        find_inception_weights(cfg["eval"]["inception"])
    load_kid_extractor(cfg["eval"]["kid_features"])


def train(cfg: dict, resume: bool | str = False) -> dict:
    """Run (or continue) one training run; returns the last evaluation's scalars."""
    cfg = resolve_config(cfg)
    check_eval_files(cfg)
    env = dist.setup(cfg["device"])
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    dist.seed_all(cfg["seed"], 0)  # same initial weights everywhere (then broadcast anyway)
    res, tc = int(cfg["data"]["resolution"]), cfg["train"]
    dataset = load_dataset(cfg["data"]["path"], cfg["data"]["root"], res)
    m = build_models(cfg, env)
    extractor, fid_note = _inception(cfg, env.device) if env.is_main else (None, "")
    kid_extractor = load_kid_extractor(cfg["eval"]["kid_features"], env.device) if env.is_main else None
    with Run(cfg, cfg["out"], env, resume=resume) as run:
        state = run.load()
        start, last_eval = _start(state, cfg, m, env, run.resume_path)
        batches = dist.step_batches(dataset, tc["batch"], env, cfg["seed"], start * tc["n_dis"],
                                    cfg["data"]["workers"], rng=state and state["rng"])
        if env.is_main:
            print(f"model={cfg['model']} G={count_parameters(m.G) / 1e6:.2f}M D={count_parameters(m.D) / 1e6:.2f}M "
                  f"images={len(dataset)} res={res} device={env.device} world={env.world_size} out={run.dir}",
                  file=sys.stderr)
            if fid_note:
                print(fid_note, file=sys.stderr)
        last_eval = _loop(cfg, run, m, batches, dataset, (extractor, kid_extractor), start, last_eval)
    dist.cleanup()
    return last_eval


def _loop(cfg: dict, run: Run, m: Models, batches, dataset, extractors, start: int, last_eval: dict) -> dict:
    """Steps ``start`` .. ``train.steps``: LR schedule, D and G phases, EMA, logs, evaluation, checkpoints.

    ``extractors``: (Inception or None, the extra KID extractor or None)."""
    tc, env = cfg["train"], run.env
    loss_fn = build_g_loss(cfg)
    bar, meter, ref = progress(tc["steps"], start, env.is_main), Meter(), None
    for step in range(start, tc["steps"]):
        scale = linear_decay(step, tc["steps"]) if tc["decay"] == "linear" else 1.0
        m.set_lr(tc["lr_G"] * scale, tc["lr_D"] * scale)
        for stats in train_step(m, batches, cfg, step, env, loss_fn):
            meter.add(stats)
        m.ema.update(m.G, step)
        meter.step()
        bar.update(1)
        done = step + 1
        if done % cfg["log"]["every"] == 0 or done == tc["steps"]:
            run.log(done, meter.pop() | {"lr/G": m.optG.param_groups[0]["lr"]}, bar)
        every = cfg["eval"]["every"]
        if env.is_main and ((every and done % every == 0) or done == tc["steps"]):
            if ref is None:  # the same real subset for every run and seed
                ref = RealReference(real_images(dataset, cfg["eval"]["real"], 0), extractors[0], env.device,
                                    kid_extractor=extractors[1])
            scored = m.G if cfg["eval"]["generator"] == "G" else m.ema.module
            last_eval = _evaluate(cfg, scored, ref, extractors, run, done, env.device)
            bar.write(f"step {done}: " + "  ".join(f"{k} {v:.4g}" for k, v in last_eval.items()
                                                   if isinstance(v, float)))
        if run.end_step(done, tc["steps"], cfg["log"]["ckpt_every"],
                        partial(m.state, cfg, done, metrics=last_eval), say=bar.write):
            break
    bar.close()
    return last_eval


def _start(state: dict | None, cfg: dict, m: Models, env: dist.DistEnv, path) -> tuple[int, dict]:
    """(first step, last evaluation): from the checkpoint to resume, else step 0 with every process on
    rank 0's weights and G_ema = G."""
    if state is None:
        _broadcast(m.G, env)
        _broadcast(m.D, env)
        m.ema.reset(m.G)
        return 0, {}
    old = (state.get("config") or {}).get("model")
    if old is not None and old.startswith("ssd-") != isinstance(m.D, SSDDiscriminator):
        raise CheckpointError(f"{path}: the checkpoint was trained as {old}, which has a different discriminator")
    m.load(state, path)
    return int(state["step"]), state.get("metrics") or {}


def _evaluate(cfg, G, ref, extractors, run, step, device) -> dict:
    """Score ``G`` (G_ema with re-estimated BatchNorm statistics, or the training G as it is: ``eval.generator``)."""
    ec = cfg["eval"]
    if ec["generator"] != "G":
        standing_stats(G, n_batches=ec["bn_batches"], batch=64, seed=cfg["seed"])
    out_dir = run.dir / "eval" / f"{step:07d}"
    ev = evaluate(G, ref, out_dir, n=ec["samples"], seed=cfg["seed"], extractor=extractors[0], grid=ec["grid"],
                  label=cfg["model"], device=device, kid_subsets=ec["kid_subsets"], kid_extractor=extractors[1])
    run.logger.scalars(step, {k: v for k, v in ev.scalars.items() if isinstance(v, float)}, prefix="eval")
    if len(ev.samples):
        from torchvision.utils import make_grid

        nrow = max(1, int(math.isqrt(len(ev.samples))))
        run.logger.image("eval/samples", make_grid((ev.samples + 1) / 2, nrow=nrow, padding=2), step, save=False)
    return ev.scalars


# ---------------------------------------------------------------------------------------- CLI

_SHORTCUTS = {  # flag -> config key
    "model": "model", "feature": "feature", "data": "data.path", "data_root": "data.root",
    "resolution": "data.resolution", "out": "out", "steps": "train.steps", "batch": "train.batch",
    "n_dis": "train.n_dis", "width": "net.width", "seed": "seed", "device": "device", "threads": "threads",
    "inception": "eval.inception", "eval_every": "eval.every", "samples": "eval.samples",
    "kid_features": "eval.kid_features",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="train_unconditional.py",
                                description="Train an unconditional GAN (SNGAN / StyleGAN, with or without SSD).")
    p.add_argument("--config", "-c", type=Path, default=None, help="YAML config (default: built-in defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set train.n_dis=2 (repeatable)")
    p.add_argument("--model", choices=MODELS)
    p.add_argument("--feature", choices=FEATURES, help="SSD spectral feature (default azimuthal)")
    p.add_argument("--data", help="image folder, or cifar10 | cifar100 | stl10 (with --data-root)")
    p.add_argument("--data-root", help="folder holding the torchvision data set's files (never downloaded)")
    p.add_argument("--resolution", type=int, help="image size (SNGAN: 32, 48, 128)")
    p.add_argument("--width", type=int, help="ngf = ndf = WIDTH (reduced-width runs)")
    p.add_argument("--steps", type=int, help="generator steps")
    p.add_argument("--batch", type=int, help="batch size per process")
    p.add_argument("--n-dis", type=int, help="discriminator steps per generator step")
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--device", help="auto | cpu | cuda[:N]")
    p.add_argument("--inception", help="Inception-v3 weights file for FID/KID")
    p.add_argument("--kid-features", help="CIFAR classifier file (train_cifar_features.py) for an extra KID")
    p.add_argument("--eval-every", type=int, help="steps between evaluations (0: at the end only)")
    p.add_argument("--samples", type=int, help="generated images per evaluation")
    p.add_argument("--out", help="run folder")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CKPT",
                   help="continue from OUT/last.pt (or from the checkpoint given)")
    p.add_argument("--print-config", action="store_true", help="print the merged config and exit")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> dict:
    """Defaults < YAML file < ``--set`` overrides < explicit flags (taken verbatim, not parsed as YAML)."""
    cfg = load_config(args.config, args.overrides, DEFAULTS)
    for flag, key in _SHORTCUTS.items():
        v = getattr(args, flag, None)
        if v is not None:
            *parents, last = key.split(".")
            node = cfg
            for k in parents:
                node = node[k]
            node[last] = v
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_reporting_errors(_run, args)


def _run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(resolve_config(cfg), sort_keys=False))
        return 0
    train(cfg, resume=args.resume)
    return 0


if __name__ == "__main__":
    sys.exit(main())
