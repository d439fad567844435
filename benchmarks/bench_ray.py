"""The Ray engine of ``dehaze restore`` against the local engine, on a folder of small photos, in one run.

    .venv/bin/python benchmarks/bench_ray.py [--photos 100] [--size 320x240] [--model models/dehaze-default.onnx]
        [--method model|dcp] [--rounds 1]

Writes ``--photos`` synthetic hazy JPEGs of ``--size`` to a temporary folder, then times whole runs of
``dehaze restore`` (in this process, every output written, one ONNX Runtime thread per worker):

- the local engine (``--threads 1``);
- ``--engine ray --workers 1`` and ``--workers 2`` on a Ray instance bound to 127.0.0.1 and started
  beforehand (its start-up, timed on its own, is what a run without a cluster pays once more);

and prints seconds per run (the best of ``--rounds``), photos per second, the Ray path's overhead
(1 worker over the local engine) and the speed-up from 1 to 2 workers. Each run writes to a new
folder, so nothing is skipped.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from dehaze.cli import main


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth synthetic hazy scene with a little texture, uint8 RGB."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.random((4, 4, 3), dtype=np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    ramp = np.linspace(0.2, 0.8, w, dtype=np.float32)[None, :, None]
    img = 0.5 * base + 0.4 * ramp + 0.05 + rng.normal(0, 0.02, (h, w, 1)).astype(np.float32)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def timed_run(src: Path, out: Path, method: list[str], extra: list[str]) -> float:
    t0 = time.perf_counter()
    code = main(["restore", str(src), "-o", str(out), "--threads", "1", "--quality", "90", *method, *extra])
    seconds = time.perf_counter() - t0
    assert code == 0, code
    return seconds


def main_bench() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=100)
    ap.add_argument("--size", default="320x240", help="WxH of each photo (320x240)")
    ap.add_argument("--model", default=None, help="ONNX model (default: the shipped one)")
    ap.add_argument("--method", default="model", choices=("model", "dcp"))
    ap.add_argument("--rounds", type=int, default=1, help="runs of each engine; the best is kept (1)")
    opts = ap.parse_args()
    w, h = (int(v) for v in opts.size.lower().split("x"))
    method = ["--method", opts.method] + (["--model", opts.model] if opts.model else [])

    import ray

    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        for i in range(opts.photos):
            cv2.imwrite(str(src / f"p{i:04d}.jpg"), cv2.cvtColor(photo(h, w, i), cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
        t0 = time.perf_counter()
        ray.init(_node_ip_address="127.0.0.1", num_cpus=2, include_dashboard=False, log_to_driver=False)
        start_up = time.perf_counter() - t0
        runs = {"local": [], "ray, 1 worker": [], "ray, 2 workers": []}
        extras = {"local": [], "ray, 1 worker": ["--engine", "ray", "--workers", "1"],
                  "ray, 2 workers": ["--engine", "ray", "--workers", "2"]}
        try:
            for r in range(opts.rounds):
                for name, extra in extras.items():
                    out = Path(tmp) / f"out-{name.replace(' ', '').replace(',', '-')}-{r}"
                    runs[name].append(timed_run(src, out, method, extra))
        finally:
            ray.shutdown()

    best = {name: min(times) for name, times in runs.items()}
    print(f"\n{opts.photos} photos of {w}x{h} (JPEG), method {opts.method}"
          f"{' ' + Path(opts.model).name if opts.model else ''}, 1 ONNX Runtime thread per worker, "
          f"best of {opts.rounds}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"Ray start-up (ray.init, a local instance on 127.0.0.1): {start_up:.1f} s")
    print(f"{'engine':<16} | {'seconds':>7} | {'photos/s':>8}")
    for name, seconds in best.items():
        print(f"{name:<16} | {seconds:7.2f} | {opts.photos / seconds:8.1f}")
    overhead = best["ray, 1 worker"] / best["local"]
    print(f"Ray overhead (1 worker / local): {overhead:.2f}x "
          f"({(best['ray, 1 worker'] - best['local']) / opts.photos * 1000:+.0f} ms per photo)")
    print(f"speed-up from 1 to 2 workers: {best['ray, 1 worker'] / best['ray, 2 workers']:.2f}x")


if __name__ == "__main__":
    main_bench()
