"""How each kind of real-world haze (dehaze/haze.py) affects models: one synthetic test set per kind.

    .venv/bin/python benchmarks/bench_real_world_haze.py --methods models/dehaze-default.onnx dcp hazy \\
        [--kinds reside sand mist patchy dense linear camera] [--side 512] [--json FILE]

Every kind is a set of pairs made from the 45 held-out clean photos (``training/splits/heldout-v1.txt``,
never trained on), shrunk to a long side of ``--side`` px, with the shipped recipe's outdoor haze
(``reside``) plus one real-world setting at full probability: a sand or smog or mist airlight,
patchy haze (NH-HAZE-like), the dense preset, haze added in linear light, or the camera after the
haze (sensor noise and JPEG). Same seed for every method, so the sets are identical. Prints mean
PSNR / SSIM per kind and method: the per-setting measurement of issue 17's synthesis options.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from dehaze.data import read_rgb
from dehaze.evaluation import score
from dehaze.haze import HazeSynthesizer, haze_preset, synthesize_pair
from dehaze.inference import get_method
from dehaze.io import shrink_to_fit
from dehaze.pairs import split_photos

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = ROOT / "training" / "splits" / "heldout-v1.txt"
# the shipped recipe's outdoor member (training/configs/dehaze-default.yaml)
BASE = replace(HazeSynthesizer.preset("outdoor"), max_optical_depth=1.0, exposure=(1.0, 1.5))
KINDS: dict[str, HazeSynthesizer] = {
    "reside": BASE,
    "sand": replace(BASE, cast_prob=1.0, casts={"sand": 1.0}),
    "smog": replace(BASE, cast_prob=1.0, casts={"smog": 1.0}),
    "mist": replace(BASE, cast_prob=1.0, casts={"mist": 1.0}),
    "patchy": replace(BASE, nonuniform_prob=1.0, nonuniform_strength=(0.5, 1.0), nonuniform_cells=(3.0, 5.0)),
    "dense": replace(haze_preset("dense"), exposure=(1.0, 1.3)),
    "linear": replace(BASE, linear_prob=1.0),
    "camera": replace(BASE, noise_prob=1.0, jpeg_prob=1.0),
}


def make_pairs(kind: str, photos: list[Path], side: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(clear, hazy) pairs of one kind, float32 in [0, 1]; the same for every call with the same arguments."""
    out = []
    for i, f in enumerate(photos):
        clear = shrink_to_fit(read_rgb(f).astype(np.float32) / 255.0, side)
        clear, hazy, _ = synthesize_pair(clear, np.random.default_rng([seed, i]), KINDS[kind])
        out.append((clear, hazy))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=["model", "dcp", "hazy"],
                   help="model files (.onnx or .pt), model (the default model), dcp, hazy")
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    p.add_argument("--side", type=int, default=512, help="long side of the test photos (512)")
    p.add_argument("--clean-root", type=Path, default=ROOT.parent / "shared" / "data" / "clean")
    p.add_argument("--limit", type=int, help="first N held-out photos")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)

    photos = split_photos(HELD_OUT, args.clean_root)[: args.limit]
    methods = {m: get_method(m, threads=1) for m in args.methods}
    res: dict = {}
    for kind in args.kinds:
        pairs = make_pairs(kind, photos, args.side)
        res[kind] = {}
        for name, fn in methods.items():
            s = [score(fn(hazy), clear) for clear, hazy in pairs]
            res[kind][name] = {k: float(np.mean([x[k] for x in s])) for k in ("psnr", "ssim")}
            res[kind][name]["psnr_sd"] = float(np.std([x["psnr"] for x in s]))
        print(f"{kind:<8} " + "  ".join(f"{Path(n).stem[:22]:>22} {r['psnr']:6.2f} {r['ssim']:.3f}"
                                         for n, r in res[kind].items()), flush=True)
    names = list(methods)
    print(f"\n{'kind':<8} " + " ".join(f"{Path(n).stem[:20]:>20}" for n in names) + "   (PSNR dB / SSIM)")
    for kind, r in res.items():
        print(f"{kind:<8} " + " ".join(f"{r[n]['psnr']:>12.2f} / {r[n]['ssim']:.3f}" for n in names))
    if args.json:
        args.json.write_text(json.dumps({"photos": len(photos), "side": args.side, "results": res}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
