#!/usr/bin/env python
"""Can a spectral classifier tell the ground truth from a generator's restorations? (docs/spectral-classifier.md)

Synthesises ``--n`` hazy/clear training crops with a recipe's haze, restores them with a trained
generator, then trains C the way the trainer does (Adam 2e-4, betas (0.5, 0.999), batches of 8
real + 8 fake, BCE, ``--steps`` steps) on the first two thirds and reports its accuracy and loss
on the last third, for each spectral input and with or without :class:`RunningStandardize`.
Chance is 0.5 and 2·ln 2 = 1.386. A feature C cannot learn on a fixed generator, it cannot learn
while the generator moves either.

    python training/probe_spectral_classifier.py --generator runs/v4/last.pt --n 1200 --out docs/spectral-classifier/probe.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from dehaze.nets import load_generator
from dehaze.nets.spectral_classifier import SpectralClassifier
from dehaze.spectral import azimuthal_spectrum, spectral_gain

# name -> (description, feature of (x, hazy))
FEATURES = {
    "phi": ("φ(x): the paper's feature (min-max normalised)", lambda x, h: azimuthal_spectrum(x)),
    "phi_drop2": ("φ(x) without the last two bins (official code)", lambda x, h: azimuthal_spectrum(x, 2)),
    "log_spectrum": ("φ(x) unnormalised", lambda x, h: azimuthal_spectrum(x, normalize=False)),
    "phi_and_hazy": ("φ(x) and φ(hazy) side by side, unnormalised",
                     lambda x, h: torch.cat([azimuthal_spectrum(x, normalize=False),
                                             azimuthal_spectrum(h, normalize=False)], 1)),
    "gain": ("φ(x) − φ(hazy) unnormalised (spectral_gain)", lambda x, h: spectral_gain(x, h)),
    "gain_drop2": ("spectral_gain without the last two bins", lambda x, h: spectral_gain(x, h, drop_high=2)),
}


def make_pairs(config: Path, generator: Path, n: int, seed: int) -> dict[str, torch.Tensor]:
    from dehaze.data import SyntheticHazeDataset, read_split
    from dehaze.train.dehazing import build_haze, read_config

    cfg = read_config(config)
    d = cfg["data"]
    exclude = [r for s in d["exclude"] for r in read_split(s)]
    ds = SyntheticHazeDataset(d["clean"], d["crop"], build_haze(d["haze"]), samples_per_epoch=n, seed=seed,
                              cache=True, exclude=exclude)
    items = [ds[(i, 0)] for i in range(n)]
    hazy, clear = torch.stack([it["hazy"] for it in items]), torch.stack([it["clear"] for it in items])
    G = load_generator(generator)[0].eval()
    with torch.no_grad():
        fake = torch.cat([G(hazy[i:i + 32]).float().clamp(-1, 1) for i in range(0, n, 32)])
    return {"hazy": hazy, "clear": clear, "fake": fake}


def probe(fr: torch.Tensor, ff: torch.Tensor, standardize: bool, steps: int, seed: int = 0) -> dict:
    n_train = 2 * len(fr) // 3
    torch.manual_seed(seed)
    C = SpectralClassifier(fr.shape[1], standardize=standardize)
    opt = torch.optim.Adam(C.parameters(), lr=2e-4, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        i = torch.randint(0, n_train, (8,), generator=g)
        j = torch.randint(0, n_train, (8,), generator=g)
        a, b = C(fr[i]), C(ff[j])
        loss = F.binary_cross_entropy_with_logits(a, torch.ones_like(a)) + \
            F.binary_cross_entropy_with_logits(b, torch.zeros_like(b))
        opt.zero_grad()
        loss.backward()
        opt.step()
    C.eval()
    with torch.no_grad():
        a, b = C(fr[n_train:]), C(ff[n_train:])
        acc = ((a > 0).float().mean() + (b <= 0).float().mean()).item() / 2
        loss = (F.binary_cross_entropy_with_logits(a, torch.ones_like(a))
                + F.binary_cross_entropy_with_logits(b, torch.zeros_like(b))).item()
    return {"accuracy": acc, "loss": loss, "held_out": 2 * (len(fr) - n_train)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", type=Path, required=True, help="a trainer checkpoint (its EMA generator is used)")
    p.add_argument("--config", type=Path, default=Path("training/configs/dehaze-default.yaml"),
                   help="the recipe whose data and haze make the crops")
    p.add_argument("--n", type=int, default=1200)
    p.add_argument("--steps", type=int, default=1600, help="C's updates (the shipped run's D had 1600)")
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="write the results as JSON")
    args = p.parse_args(argv)
    if not args.generator.is_file():
        print(f"error: {args.generator}: no such checkpoint", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    d = make_pairs(args.config, args.generator, args.n, args.seed)
    rows = []
    print(f"{'feature':14s} {'standardised':>12s} {'accuracy':>9s} {'loss':>7s}   (held-out; chance 0.500 / 1.386)")
    for name, (desc, fn) in FEATURES.items():
        fr, ff = fn(d["clear"], d["hazy"]), fn(d["fake"], d["hazy"])
        for standardize in (False, True):
            r = {"feature": name, "description": desc, "standardize": standardize,
                 **probe(fr, ff, standardize, args.steps)}
            rows.append(r)
            print(f"{name:14s} {str(standardize):>12s} {r['accuracy']:9.3f} {r['loss']:7.3f}", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"generator": str(args.generator), "config": str(args.config), "n": args.n,
                                        "steps": args.steps, "seed": args.seed, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
