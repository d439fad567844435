"""Inference speed and memory of two-scale dehazing against the dark channel prior, in one run.

    .venv/bin/python benchmarks/bench_inference.py [--model models/dehaze-default.onnx]
        [--sizes 512x512 2048x2048 4096x2160] [--repeats 3] [--threads N] [--baseline OLD.onnx]
        [--skip-memory] [--big-megapixels 100]

Speed: the model through :class:`dehaze.inference.Dehazer` (what the CLI, eval and the service
run: the network once on the working copy, the guided upsampling and inversion at full size) and
``dehaze.classical.dehaze_dcp`` on the same synthetic photos; the best of ``--repeats`` runs
after a warm-up, in seconds per megapixel, and the model's time as a ratio to DCP's (target:
at most 1.0 at 2048² and 4096x2160). ``--baseline`` adds an older model that runs tiled.

Memory: the peak resident memory (VmHWM, read in the process itself) of ``dehaze restore`` of a
4096x2160 JPEG and of a ``--big-megapixels`` JPEG, each in a fresh process, and of a
``dehaze serve`` process that receives the big JPEG on ``POST /dehaze`` (targets: 600 MB for
4096x2160, 1500 MB for 100 MP).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np

from dehaze.classical import dehaze_dcp
from dehaze.inference import Dehazer

RESTORE_SCRIPT = """
import sys
from dehaze.cli import main
code = main(["restore", sys.argv[2], "-o", sys.argv[3], "--model", sys.argv[1], "--threads", sys.argv[4]])
assert code == 0, code
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024)
"""


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth synthetic hazy scene with fine texture, uint8 (compresses like a photo as JPEG)."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.random((max(h // 64, 2), max(w // 64, 2), 3), dtype=np.float32), (w, h),
                      interpolation=cv2.INTER_CUBIC)
    ramp = np.linspace(0.2, 0.8, w, dtype=np.float32)[None, :, None]
    img = 0.5 * base + 0.4 * ramp + 0.05
    img += rng.normal(0, 0.01, (h, 1, 1)).astype(np.float32)  # a little row texture, cheap to make
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def best_seconds(fn, x: np.ndarray, repeats: int) -> float:
    fn(x[:64, :64])  # warm-up: session set-up and allocator growth
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return min(times)


def write_jpeg(path: Path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    path.write_bytes(buf.tobytes())


def restore_peak(model: str, src: Path, threads: int) -> float:
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(RESTORE_SCRIPT), model, str(src),
                          str(src.with_suffix(".out.jpg")), str(threads)], capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(res.stderr[-2000:])
    return float(res.stdout.split()[-1])


def serve_peak(model: str, src: Path, threads: int) -> tuple[float, float, int]:
    """(peak MB before the upload, after it, HTTP status) of a `dehaze serve` process on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DEHAZE_MODEL": model, "DEHAZE_THREADS": str(threads)}
    proc = subprocess.Popen([sys.executable, "-m", "dehaze", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def peak() -> float:
        with open(f"/proc/{proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024

    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        before = peak()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/dehaze", data=src.read_bytes(),
                                     headers={"Content-Type": "image/jpeg"})
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                r.read()
                status = r.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        return before, peak(), status
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="models/dehaze-default.onnx")
    p.add_argument("--sizes", nargs="+", default=["512x512", "2048x2048", "4096x2160"], help="WxH")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--baseline", help="an older (tiled) model to time beside it")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--big-megapixels", type=float, default=100.0)
    args = p.parse_args()

    cv2.setNumThreads(args.threads)
    dh = Dehazer(args.model, threads=args.threads)
    methods = {"model": dh, "dcp": dehaze_dcp}
    if args.baseline:
        methods["baseline"] = Dehazer(args.baseline, threads=args.threads)
    print(f"{dh!r}\nthreads={args.threads}, best of {args.repeats}\n")
    print(f"{'size':>10} " + " ".join(f"{n:>10}" for n in methods) + f" {'model/DCP':>10}   (s/MP)")
    for size in args.sizes:
        w, h = (int(v) for v in size.split("x"))
        x = photo(h, w).astype(np.float32) / 255  # what eval and the tests pass: float pixels
        r = {name: best_seconds(fn, x, args.repeats) / (w * h / 1e6) for name, fn in methods.items()}
        print(f"{size:>10} " + " ".join(f"{r[n]:10.3f}" for n in methods) + f" {r['model'] / r['dcp']:10.2f}",
              flush=True)

    if args.skip_memory or not Path("/proc/self/status").exists():
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        print("\npeak RSS, fresh process each")
        four_k = Path(tmp) / "photo4k.jpg"
        write_jpeg(four_k, photo(2160, 4096, 1))
        print(f"  dehaze restore 4096x2160 JPEG: {restore_peak(args.model, four_k, args.threads):6.0f} MB "
              f"(target 600)", flush=True)
        side = int((args.big_megapixels * 1e6) ** 0.5)
        big = Path(tmp) / "big.jpg"
        write_jpeg(big, photo(side, side, 2))
        mb = big.stat().st_size / 1e6
        print(f"  dehaze restore {side}x{side} JPEG ({mb:.1f} MB): "
              f"{restore_peak(args.model, big, args.threads):6.0f} MB (target 1500)", flush=True)
        before, after, status = serve_peak(args.model, big, args.threads)
        print(f"  dehaze serve, POST /dehaze of it: HTTP {status}, {after:6.0f} MB "
              f"(ready and idle: {before:.0f} MB; target 1500)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
