"""Inference speed and memory: ONNX Runtime vs PyTorch eager vs the dark channel prior, in one run.

    .venv/bin/python benchmarks/bench_inference.py [--width 32] [--depth 5] [--sizes 512 1024 2048]
                                                   [--repeats 3] [--threads N] [--tile 512]

A UNetGenerator of the shipping size (random weights: speed does not depend on them) is saved as
a checkpoint and exported with ``dehaze.export.export_onnx`` (parity checked). Each method runs
through the path users get (:class:`dehaze.inference.Dehazer` with its default tiling, and
``dehaze.classical.dehaze_dcp``) on random square images; the best of ``--repeats`` runs after a
warm-up is reported as seconds per megapixel, then as ratios to ONNX Runtime. A generator that
refines its transmission map (``t_refine``, e.g. the shipped model's card) also runs without the
refinement, and the cost of the guided filter is printed as a ratio. Finally the peak
resident memory of dehazing a 4096x2160 image with tiling is measured in fresh subprocesses (the
library on an array, and ``dehaze restore`` of a JPEG file end to end), next to the peak of the
same process before the image.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

from dehaze.classical import dehaze_dcp
from dehaze.export import export_onnx
from dehaze.inference import Dehazer
from dehaze.io import Photo, write_photo
from dehaze.nets import UNetGenerator, count_parameters

# Peak resident memory is read from /proc/self/status (VmHWM) inside the fresh process: ru_maxrss
# would include the parent's memory at fork time on Linux.
MEMORY_SCRIPT = """
import sys, numpy as np
def peak_mb():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
model, tile, threads, photo = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
if photo == "-":  # the library: Dehazer on an array
    from dehaze.inference import Dehazer
    d = Dehazer(model, tile=int(tile), threads=int(threads))
    d(np.zeros((64, 64, 3), np.float32))
    before = peak_mb()
    out = d(np.random.default_rng(0).random((2160, 4096, 3), dtype=np.float32))
    assert out.shape == (2160, 4096, 3)
else:  # the user's path: `dehaze restore` of a JPEG file (read, tiles, write)
    from dehaze.cli import main
    before = peak_mb()
    code = main(["restore", photo, "-o", photo + ".out", "--model", model, "--tile", tile, "--threads", threads])
    assert code == 0, code
print(before, peak_mb())
"""


def best_seconds(fn, x: np.ndarray, repeats: int) -> float:
    fn(x[:64, :64])  # warm-up: session/graph set-up and allocator growth
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=32, help="generator width (shipping size stand-in: 32)")
    p.add_argument("--depth", type=int, default=5, help="generator depth (5)")
    p.add_argument("--norm", default="batch", help="generator norm (batch)")
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048], help="square image sides")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tile", type=int, default=512, help="Dehazer tile (512)")
    p.add_argument(
        "--threads", type=int, default=len(os.sched_getaffinity(0)), help="CPU threads for every method"
    )
    p.add_argument("--skip-memory", action="store_true", help="skip the 4096x2160 peak-memory run")
    p.add_argument("--card", type=Path, help="take the generator's architecture from a model card "
                   "(e.g. models/dehaze-default.json) instead of --width/--depth/--norm")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.card:
        import json

        G = UNetGenerator(**json.loads(args.card.read_text())["G_config"]).eval()
    else:
        G = UNetGenerator(width=args.width, depth=args.depth, norm=args.norm).eval()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "bench.pt"
        torch.save({"G": G.state_dict(), "G_config": G.config, "config": {}, "step": 0, "metrics": {}}, ckpt)
        card = export_onnx(ckpt, Path(tmp) / "bench.onnx")
        print(
            f"UNetGenerator {G.config}: {count_parameters(G) / 1e6:.2f} M parameters, "
            f"ONNX parity {card['parity']['max_abs_error']:.1e}; threads={args.threads}, tile={args.tile}, "
            f"{os.cpu_count()} CPUs seen, best of {args.repeats}"
        )
        methods = {
            "onnxruntime": Dehazer(Path(tmp) / "bench.onnx", tile=args.tile, threads=args.threads),
            "torch eager": Dehazer(ckpt, tile=args.tile, device="cpu"),
            "dcp": dehaze_dcp,
        }
        refined = bool(getattr(G, "t_refine", 0))
        if refined:  # the same network without the guided filter on t
            export_onnx(ckpt, Path(tmp) / "plain.onnx", t_refine=0)
            methods["ORT, t unrefined"] = Dehazer(Path(tmp) / "plain.onnx", tile=args.tile, threads=args.threads)
        rows = {}
        rng = np.random.default_rng(0)
        for size in args.sizes:
            x = rng.random((size, size, 3), dtype=np.float32)
            mp = size * size / 1e6
            rows[size] = {name: best_seconds(fn, x, args.repeats) / mp for name, fn in methods.items()}

        print(
            f"\nseconds per megapixel (lower is better)\n{'size':>10} "
            + " ".join(f"{n:>12}" for n in methods)
            + f" {'torch/ORT':>10} {'DCP/ORT':>9}"
            + (f" {'ORT/unrefined':>14}" if refined else "")
        )
        for size, r in rows.items():
            ort_s = r["onnxruntime"]
            print(
                f"{size:>5}x{size:<4} "
                + " ".join(f"{r[n]:12.3f}" for n in methods)
                + f" {r['torch eager'] / ort_s:10.2f} {r['dcp'] / ort_s:9.3f}"
                + (f" {ort_s / r['ORT, t unrefined']:14.2f}" if refined else "")
            )

        if not args.skip_memory:
            if not Path("/proc/self/status").exists():
                print("\npeak memory: skipped (needs Linux /proc)")
                return
            photo = Path(tmp) / "photo4k.jpg"
            write_photo(photo, Photo(rng.random((2160, 4096, 3), dtype=np.float32), None, 8, False, "JPEG"))
            print("\npeak RSS for a 4096x2160 image with tiling, fresh process each (limit 1500 MB)")
            for what, src in [("Dehazer(onnx) on an array", "-"), ("dehaze restore of a JPEG", str(photo))]:
                res = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        textwrap.dedent(MEMORY_SCRIPT),
                        str(Path(tmp) / "bench.onnx"),
                        str(args.tile),
                        str(args.threads),
                        src,
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                before, peak = (float(v) for v in res.stdout.split()[-2:])
                print(
                    f"  {what:<28} peak {peak:6.0f} MB  (before the image: {before:4.0f} MB)  "
                    f"= {peak / 1500:.2f} of the limit"
                )


if __name__ == "__main__":
    main()
