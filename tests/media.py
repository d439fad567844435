"""Files the tests write: photos in any format and small clips (shared by the test modules; imported
as ``media`` through pytest's ``pythonpath``). PyAV is imported only when a clip is written or read."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def save(path: Path, arr: np.ndarray, fmt: str, **kw) -> Path:
    """``arr`` encoded by Pillow as ``fmt`` at ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    path.write_bytes(buf.getvalue())
    return path


def make_clip(path: Path, frames, fps: int = 12, audio: bool = False, rotation: int = 0, codec: str = "libx264",
              pix_fmt: str = "yuv420p", gop: int = 5) -> Path:
    """Encode ``frames`` (uint8 RGB) to ``path`` (Matroska when it has no suffix or ``.mkv``); with
    ``audio`` a mono AAC tone as long as the clip."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="matroska" if path.suffix in ("", ".mkv") else None) as c:
        s = c.add_stream(codec, rate=fps, options={"g": str(gop)})
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = pix_fmt
        if rotation:
            s.set_display_rotation(rotation)
        a = c.add_stream("aac", rate=8000, layout="mono") if audio else None
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode(None))
        if a is not None:
            n = int(8000 * len(frames) / fps)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 8000)).astype(np.float32)[None]
            for k in range(0, n, 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, k : k + 1024]), format="fltp",
                                                layout="mono")
                af.sample_rate, af.pts = 8000, k
                c.mux(a.encode(af))
            c.mux(a.encode(None))
    return path


def decode(path: Path) -> list[np.ndarray]:
    """Every video frame of ``path`` as uint8 RGB."""
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
