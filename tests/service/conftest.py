"""Fixtures for the service tests: a tiny model and real ``dehaze serve`` processes on 127.0.0.1.

Every server is a subprocess started through the real CLI (``python -m dehaze serve``) on a
free loopback port, waited for until ``/readyz`` answers 200, and always terminated. A test that
must reach inside the service (e.g. to slow the restoration down) runs the app in this process
instead, with :func:`start_app`.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
MAX_UPLOAD = 1_000_000  # bytes, small so the limit is cheap to cross
MAX_PIXELS = 1_000_000
TILE = 160  # small tiles (the overlap is a quarter, 40) so a 300x200 photo runs tiled
READ_TIMEOUT = 3  # seconds to receive an upload


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running ``dehaze serve`` subprocess."""

    def __init__(self, proc: subprocess.Popen, port: int, log: Path):
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kw.pop("timeout", 60), **kw)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_server(
    log_dir: Path, args: list[str] = (), env: dict[str, str] | None = None, timeout: float = 90
) -> Server:
    """Start ``python -m dehaze serve`` and wait until ``/readyz`` is 200 (fails with the log if not)."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DEHAZE_")}
    full_env.update({"DEHAZE_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    full_env.update(env or {})
    log = log_dir / f"server-{port}.log"
    cmd = [sys.executable, "-m", "dehaze", "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO, env=full_env)
    server = Server(proc, port, log)

    def exited() -> None:
        if proc.poll() is not None:
            raise RuntimeError(f"dehaze serve exited with {proc.returncode}:\n{server.output()}")

    if wait_ready(server.url, timeout, check=exited):
        return server
    server.stop()
    raise RuntimeError(f"dehaze serve was not ready within {timeout}s:\n{server.output()}")


def wait_ready(url: str, timeout: float, check=lambda: None) -> bool:
    """Poll ``url/readyz`` until it answers 200 (True) or ``timeout`` seconds pass (False);
    ``check()`` runs before each poll and may raise (e.g. the server process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check()
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return False


class AppServer:
    """An app served by uvicorn on a thread of the test process, the way ``dehaze serve`` serves it."""

    def __init__(self, app, port: int):
        import threading

        from service.app import make_server

        self.app, self.port, self.url = app, port, f"http://127.0.0.1:{port}"
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", port))
        self.server = make_server(app)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kw.pop("timeout", 60), **kw)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()


def start_app(app, timeout: float = 60) -> AppServer:
    """Serve ``app`` on a free loopback port in a thread and wait until ``/readyz`` is 200."""
    s = AppServer(app, free_port())
    s.thread.start()
    if wait_ready(s.url, timeout):
        return s
    s.stop()
    raise RuntimeError(f"the app was not ready within {timeout}s")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A width-4, depth-3 U-Net: exported to ONNX when ``dehaze.export`` exists, else the checkpoint."""
    import torch

    from dehaze.nets import UNetGenerator

    d = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    G = UNetGenerator(width=4, depth=3)
    sd = G.state_dict()
    ckpt = d / "tiny-dehaze.pt"
    torch.save({"G": sd, "G_ema": sd, "G_config": G.config, "config": {}, "step": 0, "metrics": {}}, ckpt)
    try:
        from dehaze.export import export_onnx
    except ImportError:
        return ckpt
    out = d / "tiny-dehaze.onnx"
    export_onnx(ckpt, out)
    return out


@pytest.fixture(scope="session")
def tiny_asm_model(tmp_path_factory) -> Path:
    """A width-4, depth-3 U-Net with the ASM head: a two-scale ONNX model (working size 64)."""
    import torch

    from dehaze.export import export_onnx
    from dehaze.nets import UNetGenerator

    d = tmp_path_factory.mktemp("asm-model")
    torch.manual_seed(0)
    G = UNetGenerator(width=4, depth=3, head="asm").eval()
    with torch.no_grad():  # a content-dependent, clearly visible haze estimate
        G.up[-1][1].op.bias.fill_(-0.5)
    sd = G.state_dict()
    ckpt = d / "tiny-asm.pt"
    torch.save({"G": sd, "G_ema": sd, "G_config": G.config, "config": {}, "step": 0, "metrics": {}}, ckpt)
    out = d / "tiny-asm.onnx"
    export_onnx(ckpt, out, working_size=64)
    return out


@pytest.fixture(scope="session")
def asm_server(tiny_asm_model, tmp_path_factory) -> Iterator[Server]:
    """A server with the two-scale tiny model (strength, haze cache, re-renders)."""
    s = start_server(tmp_path_factory.mktemp("asm-server"), ["--model", str(tiny_asm_model)],
                     {"DEHAZE_QUEUE": "16"})
    yield s
    s.stop()


@pytest.fixture(scope="session")
def server(tiny_model, tmp_path_factory) -> Iterator[Server]:
    """The main test server: the tiny model, small upload/pixel limits and small tiles."""
    s = start_server(
        tmp_path_factory.mktemp("server"),
        ["--model", str(tiny_model)],
        {
            "DEHAZE_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
            "DEHAZE_MAX_PIXELS": str(MAX_PIXELS),
            "DEHAZE_TILE": str(TILE),
            "DEHAZE_QUEUE": "16",
            "DEHAZE_READ_TIMEOUT": str(READ_TIMEOUT),
        },
    )
    yield s
    s.stop()


def hazy_rgb(h: int = 100, w: int = 150, seed: int = 0) -> np.ndarray:
    """A synthetic hazy scene, uint8 HxWx3: coloured blocks and a gradient under a grey veil."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    scene = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin(xx / 9.0) * np.cos(yy / 7.0)], axis=2)
    for _ in range(6):
        y0, x0 = rng.integers(0, h - 10), rng.integers(0, w - 10)
        scene[y0 : y0 + h // 4, x0 : x0 + w // 5] = rng.random(3)
    t = np.clip(0.35 + 0.6 * (1 - yy / h), 0.1, 1)[..., None]  # more haze at the horizon (top)
    hazy = scene * t + 0.85 * (1 - t)
    return (np.clip(hazy, 0, 1) * 255 + 0.5).astype(np.uint8)


def encode(arr: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus exposition text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    key = f"{name}{{{want}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture(scope="session")
def svc():
    """The helpers above for test modules (test files cannot import conftest)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        start_server=start_server,
        start_app=start_app,
        free_port=free_port,
        hazy_rgb=hazy_rgb,
        encode=encode,
        metric=metric,
        MAX_UPLOAD=MAX_UPLOAD,
        MAX_PIXELS=MAX_PIXELS,
        TILE=TILE,
        READ_TIMEOUT=READ_TIMEOUT,
        REPO=REPO,
    )
