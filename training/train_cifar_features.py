#!/usr/bin/env python
"""Train the small CIFAR-10 classifier whose features give the reproduction's KID (no Inception here).

    python training/train_cifar_features.py --data ../shared/data/cifar10 --out docs/reproduction/cifar_features.pt

``DATA/train/<class>/*`` trains it (random crops with 2-pixel padding, horizontal flips, SGD with
momentum, cosine learning rate), ``DATA/test/<class>/*`` measures its accuracy. The file keeps the
weights in float16 (about 170 kB) with the architecture, the accuracy and the command;
:func:`dehaze.metrics.gan.load_cifar_features` reads it, and ``eval.kid_features=FILE`` (trainer) or
``--kid-features FILE`` (``reproduce_ssd.py``) scores generators with it. The KID it gives ranks
generators of the same data; it is not comparable with published Inception FID/KID.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dehaze.errors import InputError, run_reporting_errors
from dehaze.metrics.gan import CifarFeatures
from dehaze.train.checkpoint import atomic_write_bytes

EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def load_split(folder: Path, classes: list[str] | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """All images of ``folder/<class>/`` as uint8 ``(N, 3, 32, 32)`` with labels; classes sorted by name."""
    if not folder.is_dir():
        raise InputError(f"no image folder at {folder} (expected {folder}/<class>/*.jpg)")
    classes = classes or sorted(d.name for d in folder.iterdir() if d.is_dir())
    images, labels = [], []
    for i, c in enumerate(classes):
        for f in sorted((folder / c).iterdir()) if (folder / c).is_dir() else []:
            if f.suffix.lower() in EXTS:
                with Image.open(f) as im:
                    images.append(np.asarray(im.convert("RGB").resize((32, 32), Image.BILINEAR)))
                labels.append(i)
    if not images:
        raise InputError(f"no images in the class folders of {folder}")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(labels), classes


def to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 127.5 - 1


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random 32×32 crops of the 2-pixel reflect-padded batch, half of them mirrored."""
    n = x.shape[0]
    pad = F.pad(x, (2, 2, 2, 2), mode="reflect")
    dx, dy = torch.randint(0, 5, (2, n), generator=g)
    out = torch.stack([pad[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32] for i in range(n)])
    flip = torch.rand(n, generator=g) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


@torch.no_grad()
def accuracy(net: CifarFeatures, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    net.eval()
    correct = sum(int((net.logits(to_float(x[i:i + batch])).argmax(1) == y[i:i + batch]).sum())
                  for i in range(0, len(x), batch))
    return correct / len(x)


def train(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = Path(args.data).expanduser()
    xtr, ytr, classes = load_split(data / "train")
    xte, yte, _ = load_split(data / "test", classes)
    print(f"train {len(xtr)} test {len(xte)} images, {len(classes)} classes", file=sys.stderr)
    net = CifarFeatures(classes=len(classes))
    steps = args.epochs * (len(xtr) // args.batch)
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps, pct_start=0.15)
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(xtr), generator=g)
        losses = []
        for i in range(0, len(xtr) - args.batch + 1, args.batch):
            idx = perm[i:i + args.batch]
            loss = F.cross_entropy(net.logits(to_float(augment(xtr[idx], g))), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        acc = accuracy(net, xte, yte)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {np.mean(losses):.3f} test accuracy {acc:.3f} "
              f"({time.time() - t0:.0f} s)", file=sys.stderr)
    info = {"test_accuracy": acc, "train_images": len(xtr), "test_images": len(xte), "epochs": args.epochs,
            "classes": classes, "seconds": round(time.time() - t0), "command": args.command}
    blob = {"widths": list(net.widths), "classes": len(classes), "info": json.dumps(info),
            "state_dict": {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, lambda f: torch.save(blob, f))
    atomic_write_bytes(out.with_suffix(".json"), lambda f: f.write(json.dumps(info, indent=2).encode()))
    return info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="train_cifar_features.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/cifar10", help="folder with train/<class>/ and test/<class>/")
    p.add_argument("--out", default="docs/reproduction/cifar_features.pt", help="weights file (+ .json summary)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    args.command = "python training/train_cifar_features.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    return args


def _run(args: argparse.Namespace) -> int:
    info = train(args)
    print(json.dumps({k: info[k] for k in ("test_accuracy", "epochs", "seconds")}))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_reporting_errors(_run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
