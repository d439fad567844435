"""Load test of the HTTP service on loopback, against the bare ``Dehazer`` on the same image.

Starts ``dehaze serve`` as a subprocess on 127.0.0.1 (a free port), then:

1. sequential pairs: ``Dehazer(model)(rgb)`` in this process, then one HTTP request with the same
   image (JPEG and PNG in and out); the ratio HTTP / bare (target: < 1.20 at 512x512) per pair,
   so both sides see the same load on a shared machine; the HTTP time is split into server
   inference, decode/encode and transport;
2. load: ``--requests`` JPEG requests from ``--clients`` concurrent clients; throughput, p50/p95/p99,
   errors (503 busy counted apart) and the server's peak RSS (VmHWM from /proc/PID/status).

Without ``--model`` a stand-in is exported: the default training config's U-Net
(width 32, depth 5, max_width 256) with random weights; its speed is the shipped model's speed.
Everything is bounded: request counts, a per-request timeout and ``--max-seconds`` overall.

    .venv/bin/python benchmarks/load_service.py [--model M.onnx] [--size 512] [--requests 40] [--clients 4]
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
STAND_IN = dict(width=32, depth=5, max_width=256, norm="batch")  # dehaze/train/defaults.yaml model.G


def stand_in_model(folder: Path) -> Path:
    """Export a randomly initialised default-size generator to ONNX (same cost as a trained one)."""
    import torch

    from dehaze.export import export_onnx
    from dehaze.nets import UNetGenerator

    torch.manual_seed(0)
    G = UNetGenerator(**STAND_IN).eval()
    sd = G.state_dict()
    ckpt = folder / "stand-in.pt"
    torch.save({"G": sd, "G_ema": sd, "G_config": G.config, "config": {}, "step": 0, "metrics": {}}, ckpt)
    out = folder / "stand-in.onnx"
    export_onnx(ckpt, out)
    return out


def test_image(size: int) -> tuple[np.ndarray, dict[str, bytes]]:
    """A hazy-looking size x size image (smooth colours, slight sensor noise) and its JPEG and PNG files."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    rgb = np.stack([xx, yy, 0.5 + 0.5 * np.sin(8 * xx) * np.cos(6 * yy)], 2) * 0.6 + 0.3
    rgb = np.clip(rgb + rng.normal(0, 0.02, rgb.shape), 0, 1).astype(np.float32)
    files = {}
    for fmt in ("JPEG", "PNG"):
        buf = io.BytesIO()
        Image.fromarray((rgb * 255 + 0.5).astype(np.uint8)).save(
            buf, fmt, **({"quality": 92} if fmt == "JPEG" else {})
        )
        files[fmt] = buf.getvalue()
    return rgb, files


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def proc_status(pid: int, key: str) -> int:
    """A kB field of /proc/PID/status (VmHWM = peak resident set size), in bytes; 0 if unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEHAZE_")}
    cmd = [
        sys.executable,
        "-m",
        "dehaze",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--model",
        str(model),
        "--concurrency",
        str(args.server_concurrency),
        "--queue",
        str(args.queue),
        "--log-level",
        "warning",
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"error: the server exited with code {proc.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("error: the server was not ready within 120 s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="ONNX model or checkpoint (default: a default-size stand-in)")
    ap.add_argument("--size", type=int, default=512, help="image side in pixels")
    ap.add_argument("--sequential", type=int, default=15, help="timed (bare, HTTP) pairs per format")
    ap.add_argument("--requests", type=int, default=40, help="requests in the concurrent phase")
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients in that phase")
    ap.add_argument("--server-concurrency", type=int, default=1, help="the server's --concurrency")
    ap.add_argument("--queue", type=int, default=8, help="the server's --queue")
    ap.add_argument(
        "--threads", type=int, default=0, help="inference threads, server and bare (0: all cores)"
    )
    ap.add_argument("--max-seconds", type=float, default=600, help="stop sending requests after this long")
    args = ap.parse_args()
    t_start = time.monotonic()

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or stand_in_model(Path(tmp))
        rgb, images = test_image(args.size)

        # the bare Dehazer runs in this process, interleaved with the HTTP requests below, so both
        # see the same load from whatever else shares the machine
        from dehaze.inference import Dehazer

        dehazer = Dehazer(model, threads=args.threads or None)
        for _ in range(2):
            dehazer(rgb)

        def bare_once() -> float:
            t0 = time.perf_counter()
            dehazer(rgb)
            dt = time.perf_counter() - t0
            time.sleep(0.02)  # let ONNX Runtime's spinning threads go idle before the server runs
            return dt

        proc, url = start_server(model, args)
        try:
            # sequential pairs (bare call, HTTP request), per input format (the output keeps it)
            seq: dict[str, dict[str, float]] = {}
            bare: list[float] = []
            with httpx.Client(base_url=url, timeout=120) as c:
                for fmt, data in images.items():
                    files = {"image": (f"bench.{fmt.lower()}", data, f"image/{fmt.lower()}")}
                    c.post("/dehaze", files=files)  # connection and allocator warm-up
                    total, inf, proc_s, ratios, pair_bare = [], [], [], [], []
                    for _ in range(args.sequential):
                        pair_bare.append(bare_once())
                        t0 = time.perf_counter()
                        r = c.post("/dehaze", files=files)
                        total.append(time.perf_counter() - t0)
                        if r.status_code != 200:
                            raise SystemExit(f"error: sequential request failed: {r.status_code} {r.text}")
                        inf.append(float(r.headers["x-inference-seconds"]))
                        proc_s.append(float(r.headers["x-process-seconds"]))
                        ratios.append(total[-1] / pair_bare[-1])
                        time.sleep(0.02)
                    bare += pair_bare
                    codec = [p - i for p, i in zip(proc_s, inf)]
                    seq[fmt] = {
                        "http": statistics.median(total),
                        "inference": statistics.median(inf),
                        "codec": statistics.median(codec),
                        "bytes": len(data),
                        "bare": statistics.median(pair_bare),
                        "ratio": statistics.median(ratios),
                        "ratio_min": min(total) / min(pair_bare),
                        "ratio_nocodec": statistics.median(
                            (t - k) / b for t, k, b in zip(total, codec, pair_bare)
                        ),
                    }
            name, backend = dehazer.name, dehazer.backend

            # concurrent load with the JPEG photo
            files = {"image": ("bench.jpg", images["JPEG"], "image/jpeg")}
            lat: list[float] = []
            codes: dict[int, int] = {}
            lock = threading.Lock()
            local = threading.local()
            deadline = t_start + args.max_seconds

            def one(_: int) -> None:
                if time.monotonic() > deadline:
                    code, dt = -2, 0.0  # not sent: out of time
                else:
                    if not hasattr(local, "client"):
                        local.client = httpx.Client(base_url=url, timeout=120)
                    t0 = time.perf_counter()
                    try:
                        code = local.client.post("/dehaze", files=files).status_code
                    except httpx.HTTPError:
                        code = -1
                    dt = time.perf_counter() - t0
                with lock:
                    codes[code] = codes.get(code, 0) + 1
                    if code == 200:
                        lat.append(dt)

            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(one, range(args.requests)))
            wall = time.perf_counter() - t0
            peak_rss = proc_status(proc.pid, "VmHWM")
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()

    ok = codes.get(200, 0)
    print(
        f"model {name} ({backend}), image {args.size}x{args.size}, threads {args.threads or 'all'}, "
        f"server concurrency {args.server_concurrency}, queue {args.queue}"
    )
    print(
        f"bare Dehazer           p50 {statistics.median(bare) * 1e3:7.1f} ms  (min {min(bare) * 1e3:.1f}, "
        f"n={len(bare)})"
    )
    for fmt, m in seq.items():
        print(
            f"HTTP {fmt:4s} in and out  p50 {m['http'] * 1e3:7.1f} ms  = server inference "
            f"{m['inference'] * 1e3:.1f} + decode/encode {m['codec'] * 1e3:.1f} + transport/framework "
            f"{(m['http'] - m['inference'] - m['codec']) * 1e3:.1f}  ({m['bytes'] / 1e3:.0f} kB upload)"
        )
        print(
            f"  HTTP / bare latency ratio: median of pairs {m['ratio']:.3f}, best-of {m['ratio_min']:.3f} "
            f"(target < 1.20); without the image codec {m['ratio_nocodec']:.3f}"
        )
    print(f"load: {args.requests} JPEG requests, {args.clients} clients, {wall:.1f} s wall")
    print(
        f"  throughput {ok / wall:.2f} images/s; latency p50 {percentile(lat, 50) * 1e3:.0f} ms, "
        f"p95 {percentile(lat, 95) * 1e3:.0f} ms, p99 {percentile(lat, 99) * 1e3:.0f} ms"
    )
    errors = {k: v for k, v in codes.items() if k != 200}
    print(
        f"  ok {ok}, busy (503) {codes.get(503, 0)}, other errors "
        f"{sum(v for k, v in errors.items() if k != 503)} {errors or ''}"
    )
    print(f"  server peak RSS {peak_rss / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
