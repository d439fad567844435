#!/usr/bin/env python
"""Training cost of the SSD spectral classifier: seconds per step of pix2pix vs ssd vs ssd-phase (vs ssd-full).

The SSD-GAN paper claims its classifier adds little cost (target here: ``ssd`` at most 10 % slower
per step than ``pix2pix``). Every mode runs the trainer's real step (G forward, D+C step, G step) on
the same synthetic batch; modes are interleaved over several rounds and the median is reported, so
load from other processes hits every mode alike. Prints ratios measured in this one run.

    python benchmarks/bench_training.py [--batch 8] [--crop 128] [--rounds 5] [--steps 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dehaze.losses import classifier_loss, d_loss, g_loss, l1_loss
from dehaze.nets import SSDDiscriminator
from dehaze.train.config import load_config
from dehaze.train.dehazing import DEFAULTS, build_nets


def make_step(mode: str, crop: int, batch: int, G_cfg: dict, D_cfg: dict):
    cfg = load_config(None, [f"mode={mode}", f"data.crop={crop}"], DEFAULTS)
    cfg["model"]["G"].update(G_cfg)
    cfg["model"]["D"].update(D_cfg)
    torch.manual_seed(0)
    G, D = build_nets(cfg, torch.device("cpu"))
    optG = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    optD = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    hazy, clear = torch.rand(batch, 3, crop, crop) * 2 - 1, torch.rand(batch, 3, crop, crop) * 2 - 1

    def step():
        fake = G(hazy)
        real_out, fake_out = D(clear, cond=hazy), D(fake.detach(), cond=hazy)
        loss = d_loss(real_out, fake_out)
        if isinstance(D, SSDDiscriminator):
            loss = loss + classifier_loss(real_out, fake_out)
        optD.zero_grad(set_to_none=True)
        loss.backward()
        optD.step()
        D.requires_grad_(False)
        loss_G = g_loss(D(fake, cond=hazy)) + 100 * l1_loss(fake, clear)
        D.requires_grad_(True)
        optG.zero_grad(set_to_none=True)
        loss_G.backward()
        optG.step()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds over all modes")
    p.add_argument("--steps", type=int, default=5, help="timed steps per mode and round")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--modes", default="pix2pix,ssd,ssd-phase,ssd-full")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    G_cfg = {"width": 32, "depth": 5, "max_width": 256, "upsample": "bilinear", "head": "asm"}
    D_cfg = {"width": 32}
    modes = args.modes.split(",")
    steps = {m: make_step(m, args.crop, args.batch, G_cfg, D_cfg) for m in modes}
    for s in steps.values():  # warm-up (allocator, caches)
        s()
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for m in modes:
            t = time.perf_counter()
            for _ in range(args.steps):
                steps[m]()
            times[m].append((time.perf_counter() - t) / args.steps)
    base = statistics.median(times["pix2pix"]) if "pix2pix" in times else None
    print(f"training step cost, batch {args.batch}, crop {args.crop}, {torch.get_num_threads()} threads, "
          f"median of {args.rounds} interleaved rounds x {args.steps} steps")
    print(f"{'mode':<10} {'s/step':>8} {'vs pix2pix':>11}")
    for m in modes:
        med = statistics.median(times[m])
        ratio = f"{med / base:.3f}x" if base else "-"
        print(f"{m:<10} {med:8.3f} {ratio:>11}")


if __name__ == "__main__":
    main()
