"""``dehaze serve``: run the HTTP service (``service/``) with uvicorn.

Every option has a matching ``DEHAZE_*`` environment variable (see ``service/settings.py``);
an option given on the command line wins. Without a model file the command stops with one
line saying which file is missing and how to make one, unless ``--method dcp`` is given, in
which case the classical dark-channel-prior baseline is served without a network.

This module is the one sanctioned bridge from the library to ``service``: it imports the
service lazily inside :func:`run`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="serve the dehazing HTTP API and web page",
        description="Serve POST /dehaze, /healthz, /readyz, /metrics, /models, the web page at / and the "
        "API docs at /docs. Options default to the DEHAZE_* environment variables, then to "
        "the documented defaults.",
    )
    a = p.add_argument
    a("--host", default=None, help="interface to bind (DEHAZE_HOST, default 127.0.0.1)")
    a("--port", type=int, default=None, help="TCP port (DEHAZE_PORT, default 8000)")
    a(
        "--model",
        type=Path,
        default=None,
        help="ONNX model or PyTorch checkpoint (DEHAZE_MODEL, default: the shipped model)",
    )
    a(
        "--method",
        choices=("model", "dcp"),
        default=None,
        help="default restoration: the network, or dcp "
        "(dark channel prior, needs no model) (DEHAZE_METHOD, default model)",
    )
    a("--device", default=None, help="auto, cpu, cuda or cuda:N (DEHAZE_DEVICE, default auto)")
    a(
        "--providers",
        default=None,
        help="comma list of ONNX Runtime providers (DEHAZE_PROVIDERS, default: chosen from --device)",
    )
    a(
        "--threads",
        type=int,
        default=None,
        help="intra-op threads per inference (DEHAZE_THREADS, default: the runtime's choice)",
    )
    a(
        "--tile",
        type=int,
        default=None,
        help="tile side for large images, 0 = whole image (DEHAZE_TILE, default 512)",
    )
    a(
        "--max-upload-bytes",
        type=int,
        default=None,
        help="largest request body in bytes (DEHAZE_MAX_UPLOAD_BYTES, default 32000000)",
    )
    a(
        "--max-pixels",
        type=int,
        default=None,
        help="largest image in pixels (DEHAZE_MAX_PIXELS, default: dehaze.io's limit)",
    )
    a(
        "--concurrency",
        type=int,
        default=None,
        help="inferences running at once (DEHAZE_CONCURRENCY, default 1)",
    )
    a(
        "--queue",
        type=int,
        default=None,
        help="requests allowed to wait; more get 503 + Retry-After (DEHAZE_QUEUE, default 4)",
    )
    a(
        "--read-timeout",
        type=float,
        default=None,
        help="seconds allowed to receive one upload (DEHAZE_READ_TIMEOUT, default 30)",
    )
    a(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        default=None,
        help="skip the warm-up inference (DEHAZE_WARMUP=0)",
    )
    a(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug"),
        default=None,
        help="DEHAZE_LOG_LEVEL, default info",
    )
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    names = (
        "host",
        "port",
        "model",
        "method",
        "device",
        "providers",
        "threads",
        "tile",
        "max_upload_bytes",
        "max_pixels",
        "concurrency",
        "queue",
        "read_timeout",
        "warmup",
        "log_level",
    )
    settings = Settings.from_env(**{n: getattr(args, n, None) for n in names})
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    app = create_app(settings)
    app.state.engine.load()  # fail fast, in one line, when the model is missing or broken
    uvicorn.run(
        app, host=settings.host, port=settings.port, log_level=settings.log_level, timeout_graceful_shutdown=5
    )
    return 0
