"""Video: throughput and flicker of the stream (haze carried over time) against per-frame dehazing.

    .venv/bin/python benchmarks/bench_video.py [--model models/dehaze-default.onnx] [--frames 48]
        [--sizes 1280x720 1920x1080] [--photos HIGHWAY VALLEY] [--threads 2] [--save DIR]

The clips are made here: a still photo (``clean/sun-hays80``: a highway, then a valley) under
synthetic haze of constant density (I = J·t + A·(1 − t), t = exp(−β·d), the depth a ramp growing
upwards and fixed to the scene), filmed by a camera that pans (its centre moves by 8% of the width)
while zooming in by 13%, with sensor noise (σ = 2 grey levels), 8-bit; and the same frames after
an H.264 round trip (CRF 23, a key frame every 15), as footage comes from a camera.

- **throughput**: frames per second of :meth:`HazeStream.process` and of per-frame dehazing
  (``Dehazer.__call__``: the network on every frame) on the pan clip at each size, frames in
  memory; and end to end at the first size (``dehaze.video.restore_video``: decode an H.264 file,
  dehaze, encode H.264 with the defaults);
- **flicker** on the pan clips at the first size: the mean absolute frame-to-frame change of the
  output's mean brightness and of the mean of t (at the working size), stream over per-frame; and
  of their differences from the truth along the same camera path (the clear photo's brightness,
  the synthetic haze's mean t), which leaves out what the moving picture itself changes: what is
  left is flicker. The hazy input's own brightness change is printed for scale (H.264's key frames
  make it pump);
- **scene cut**: the highway clip cut to the valley under other haze (another A): frames the
  stream took to detect it, and frames after the cut until its A is within 0.02 of the new
  scene's (the median of the per-frame estimates there); the same without cut detection, for
  comparison; cuts found in the pan clip (should be none).

Ratios are measured in one run; absolute fps depend on the machine's load.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from dehaze.inference import Dehazer
from dehaze.io import read_photo
from dehaze.twoscale import grey, working_copy
from dehaze.video import CUT_THRESHOLD, VideoOptions, restore_video

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "clean" / "sun-hays80"
PHOTOS = [DATA / "highway_sun_bpflsdaxnddnwcqi.jpg", DATA / "valley_sun_biwcvdiwnfimbtls.jpg"]
HAZES = [((0.86, 0.87, 0.90), 1.6), ((0.72, 0.76, 0.84), 1.2)]  # (A, beta) of each scene


def hazy_still(path: Path, airlight, beta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The photo under haze of constant density (depth growing from 0.2 at the bottom to 1.2 at the
    top): (hazy, clear, t), float32, t repeated over 3 channels."""
    clear = read_photo(path).rgb
    h, w = clear.shape[:2]
    depth = np.linspace(1.2, 0.2, h, dtype=np.float32)[:, None, None]
    t = np.exp(-beta * depth)
    return (
        clear * t + np.asarray(airlight, np.float32) * (1 - t),
        clear,
        np.repeat(np.broadcast_to(t, (h, w, 1)), 3, 2),
    )


def window(still: np.ndarray, k: int, n: int, size: tuple[int, int]) -> np.ndarray:
    """Frame ``k`` of ``n`` of the camera path, float: a 16:9 window of ``size`` (W, H) panning across
    ``still`` left to right (the centre moves by 8% of its width) while zooming in by 13%."""
    H, W = still.shape[:2]
    w_out, h_out = size
    u = k / max(n - 1, 1)
    cw = W * (0.85 - 0.1 * u)  # window width: zoom in
    ch = min(cw * h_out / w_out, H * 0.95)
    cw = ch * w_out / h_out
    cx = cw / 2 + (W - cw) * (0.3 + 0.4 * u)
    m = np.float32([[cw / w_out, 0, cx - cw / 2], [0, ch / h_out, (H - ch) / 2]])
    return cv2.warpAffine(
        still, m, (w_out, h_out), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT
    )


def pan_zoom(
    still: np.ndarray, n: int, size: tuple[int, int], noise: float = 2.0, seed: int = 0
) -> list[np.ndarray]:
    """``n`` uint8 frames of the camera path (:func:`window`) plus sensor noise (``noise`` grey levels)."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        frame = window(still, k, n, size) * 255 + rng.normal(0.5, noise, (size[1], size[0], 3)).astype(
            np.float32
        )
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


def h264_round_trip(frames, path: Path) -> list[np.ndarray]:
    """The frames after H.264 (CRF 23, a key frame every 15), as a camera delivers them."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30, options={"crf": "23", "preset": "veryfast", "g": "15"})
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = "yuv420p"
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode(None))
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def mean_t(haze, frame: np.ndarray, side: int) -> float:
    small = working_copy(frame, side)
    return float(np.clip(haze.a * grey(small) + haze.b, haze.t_min, 1.0).mean())


def flicker(series: list[float]) -> float:
    return float(np.abs(np.diff(np.asarray(series, np.float64))).mean())


def run_stream(dh: Dehazer, frames, **options):
    """Outputs' mean brightness, mean t, A per frame, fps, and the stream."""
    stream = dh.stream(**options)
    side = int(dh.two_scale["working_size"])
    bright, ts, airs = [], [], []
    spent = 0.0
    for f in frames:
        t0 = time.perf_counter()
        out = stream.process(f)
        spent += time.perf_counter() - t0
        bright.append(float(out.mean()) / 255)
        ts.append(mean_t(stream.haze, f, side))
        airs.append(stream.airlight.copy())
    return bright, ts, np.array(airs), len(frames) / spent, stream


def run_per_frame(dh: Dehazer, frames):
    side = int(dh.two_scale["working_size"])
    bright, ts, airs = [], [], []
    spent = 0.0
    for f in frames:
        t0 = time.perf_counter()
        haze = dh.estimate(f)
        out = dh.apply(f, haze)
        spent += time.perf_counter() - t0
        bright.append(float(out.mean()) / 255)
        ts.append(mean_t(haze, f, side))
        airs.append(haze.airlight)
    return bright, ts, np.array(airs), len(frames) / spent


def follow(airs: np.ndarray, start: int, target: np.ndarray, tol: float = 0.02) -> int | None:
    """Frames after ``start`` until A stays within ``tol`` of ``target`` (None: never in the clip)."""
    ok = np.abs(airs[start:] - target).max(axis=1) <= tol
    for k in range(len(ok)):
        if ok[k:].all():
            return k
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="models/dehaze-default.onnx")
    p.add_argument("--frames", type=int, default=48, help="frames per clip (the cut clip has twice as many)")
    p.add_argument("--sizes", nargs="+", default=["1280x720", "1920x1080"])
    p.add_argument("--photos", nargs=2, type=Path, default=PHOTOS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save", type=Path, help="write the clips made and restored here")
    args = p.parse_args()
    dh = Dehazer(args.model, threads=args.threads)
    scenes = [hazy_still(photo, *haze) for photo, haze in zip(args.photos, HAZES)]
    stills = [hazy for hazy, _, _ in scenes]
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    print(f"model {dh.name}, {args.threads} threads, {args.frames} frames per clip, stream defaults")
    print("\nthroughput (frames in memory), fps:")
    print(f"{'size':>10} | {'stream':>7} | {'per-frame':>9} | ratio")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.save or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        clips = {}
        for size in sizes:
            frames = h264_round_trip(pan_zoom(stills[0], args.frames, size), folder / f"pan-{size[0]}.mp4")
            s_b, s_t, _, s_fps, s = run_stream(dh, frames)
            p_b, p_t, _, p_fps = run_per_frame(dh, frames)
            print(f"{size[0]}x{size[1]:<5} | {s_fps:7.1f} | {p_fps:9.1f} | {s_fps / p_fps:.2f}x")
            clips.setdefault("H.264", (frames, s_b, s_t, p_b, p_t, s.cuts))
        size = sizes[0]
        t0 = time.perf_counter()
        restore_video(
            folder / f"pan-{size[0]}.mp4", folder / "pan-dehazed.mp4", dh.stream().process, VideoOptions()
        )
        e2e = args.frames / (time.perf_counter() - t0)
    print(
        f"end to end at {size[0]}x{size[1]} (decode H.264, stream, encode H.264 CRF "
        f"{VideoOptions().crf} preset {VideoOptions().preset}): {e2e:.1f} fps"
    )
    frames = pan_zoom(stills[0], args.frames, size)
    s_b, s_t, _, _, s = run_stream(dh, frames)
    p_b, p_t, _, _ = run_per_frame(dh, frames)
    clips["uncompressed"] = (frames, s_b, s_t, p_b, p_t, s.cuts)
    _, clear, t_map = scenes[0]  # the truth: the clear photo and the haze's t along the same camera path
    truth_b = [float(window(clear, k, args.frames, size).mean()) for k in range(args.frames)]
    truth_t = [float(window(t_map, k, args.frames, size).mean()) for k in range(args.frames)]
    print(
        f"\nflicker on the {size[0]}x{size[1]} pan/zoom clips, mean |frame-to-frame change|: "
        "stream, per-frame, "
        "stream / per-frame"
    )
    for name in ("uncompressed", "H.264"):
        frames, s_b, s_t, p_b, p_t, cuts = clips[name]
        print(
            f"  {name} (input brightness {flicker([float(f.mean()) / 255 for f in frames]):.5f}, "
            f"the clear clip's {flicker(truth_b):.5f}; scene cuts found: {len(cuts)})"
        )
        for label, s_x, p_x in [
            ("output brightness", s_b, p_b),
            ("  minus the clear clip's", np.subtract(s_b, truth_b), np.subtract(p_b, truth_b)),
            ("mean t", s_t, p_t),
            ("  minus the true t's", np.subtract(s_t, truth_t), np.subtract(p_t, truth_t)),
        ]:
            print(
                f"    {label:<26} {flicker(s_x):.5f}  {flicker(p_x):.5f}  {flicker(s_x) / flicker(p_x):.2f}"
            )

    n = args.frames
    small = (640, 360)
    clip = pan_zoom(stills[0], n, small) + pan_zoom(stills[1], n, small)
    _, _, s_air, _, s = run_stream(dh, clip)  # (A as applied: smoothed, times the brightness ratio)
    _, _, n_air, _, _ = run_stream(dh, clip, cut_threshold=2.0)
    _, _, p_air, _ = run_per_frame(dh, clip)
    target = np.median(p_air[n:], axis=0)
    print(
        f"\nscene cut at frame {n} of {2 * n} ({small[0]}x{small[1]}; "
        f"A before {np.median(p_air[:n], 0).round(3)}, "
        f"after {target.round(3)}; threshold {CUT_THRESHOLD}):"
    )
    print(f"  cuts detected at frames {s.cuts}")
    print(
        "  frames after the cut until A is within 0.02 of the new scene's: "
        f"stream {follow(s_air, n, target)}, "
        f"without cut detection {follow(n_air, n, target)}, per-frame {follow(p_air, n, target)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
