"""``dehaze serve``: run the HTTP service (``service/``) with uvicorn.

Every option has a matching ``DEHAZE_*`` environment variable (see ``service/settings.py``);
an option given on the command line wins. Without a model file the command stops with one
line saying which file is missing and how to make one, unless ``--method dcp`` is given, in
which case the classical dark-channel-prior baseline is served without a network.

With ``--engine ray`` the same app runs as Ray Serve replicas (:mod:`service.ray_serve`,
``--replicas`` or ``--min-replicas``/``--max-replicas``); Ray is imported only then.

This module is the one sanctioned bridge from the library to ``service``: it imports the
service lazily inside :func:`run`.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
from pathlib import Path

from dehaze.cli.restore import TILE_HELP, positive_arg, tile_arg
from dehaze.errors import ConfigError
from dehaze.inference import DEFAULT_TILE, TILE_RULE


def _cores() -> int:
    """The cores this process may use: what the runtime is given when ``--threads`` is not set."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening), or one ConfigError line saying why not."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = "; another program is listening there: stop it or choose another --port (DEHAZE_PORT)"
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None
    return sock


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    from dehaze.io import DEFAULT_MAX_PIXELS

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
        help="intra-op threads per inference (DEHAZE_THREADS, default: every core this process may "
        f"use, {_cores()} here)",
    )
    a(
        "--tile",
        type=tile_arg,
        default=None,
        help=f"{TILE_HELP}: {TILE_RULE} (DEHAZE_TILE, default {DEFAULT_TILE})",
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
        help=f"largest image in pixels (DEHAZE_MAX_PIXELS, default {DEFAULT_MAX_PIXELS:,})",
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
        "--header-timeout",
        type=float,
        default=None,
        help="seconds a connection may take to send its request headers; then it is closed "
        "(DEHAZE_HEADER_TIMEOUT, default 5)",
    )
    a(
        "--max-connections",
        type=int,
        default=None,
        help="open connections at most; more are answered 503 (DEHAZE_MAX_CONNECTIONS, default 100)",
    )
    a(
        "--haze-cache-mb",
        type=int,
        default=None,
        help="megabytes of recent uploads and their haze estimates kept so a new strength or format "
        "re-renders without the network (DEHAZE_HAZE_CACHE_MB, default 256; 0: off)",
    )
    a(
        "--haze-cache-ttl",
        type=float,
        default=None,
        help="seconds a photo stays re-renderable (DEHAZE_HAZE_CACHE_TTL, default 600)",
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
    c = p.add_argument_group("more than one machine (Ray Serve; pip install 'ssd-dehaze[cluster]')")
    c.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process (uvicorn); ray: replicas of the same app on Ray Serve (local)")
    c.add_argument("--replicas", type=positive_arg, default=1, metavar="N",
                   help="Ray Serve replicas, each with its own model, --concurrency and --queue (1)")
    c.add_argument("--min-replicas", type=int, metavar="N",
                   help="with --max-replicas: scale between the two on ongoing requests (Ray Serve "
                   "autoscaling; target --concurrency requests per replica)")
    c.add_argument("--max-replicas", type=positive_arg, metavar="N", help="see --min-replicas")
    c.add_argument("--ray-address", metavar="ADDR",
                   help="the Ray cluster: auto or HOST:PORT; default: a Ray instance started on this machine")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    import logging
    from dataclasses import fields

    from service.app import create_app, make_server
    from service.settings import Settings

    names = [f.name for f in fields(Settings)]  # every setting has an option of the same name
    settings = Settings.from_env(**{n: getattr(args, n, None) for n in names})
    if getattr(args, "engine", "local") == "ray":
        return run_on_ray(args, settings)
    sock = listen_socket(settings.host, settings.port)  # before the model loads: a taken port fails at once
    try:
        logging.basicConfig(
            level=settings.log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s"
        )
        app = create_app(settings)
        app.state.engine.load()  # fail fast, in one line, when the model is missing or broken
        host, port = sock.getsockname()[:2]
        logging.getLogger("service").info(
            "serving on http://%s:%d", f"[{host}]" if ":" in host else host, port
        )
        make_server(app).run(sockets=[sock])
    finally:
        sock.close()
    return 0


def run_on_ray(args: argparse.Namespace, settings) -> int:
    """``--engine ray``: deploy the app on Ray Serve (:mod:`service.ray_serve`), its HTTP proxy on
    ``--host``/``--port``, until Ctrl-C or SIGTERM (then the application is deleted from the cluster, or
    the Ray instance started here is stopped)."""
    import contextlib
    import dataclasses
    import logging
    import signal
    import time

    from dehaze.cli.ray_engine import MissingRayError, connect, require_ray

    ray = require_ray()
    try:
        from ray import serve
    except ModuleNotFoundError as exc:
        raise MissingRayError(f"--engine ray needs {exc.name}, which is not installed here: "
                              "pip install 'ssd-dehaze[cluster]'") from None
    from service.app import create_app
    from service.ray_serve import deployment

    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    listen_socket(settings.host, settings.port).close()  # a taken port fails at once, in one line
    # and so does a missing or broken model, before any replica starts (on the CPU: the replicas may have
    # a GPU that this machine has not)
    create_app(dataclasses.replace(settings, device="cpu", providers=None, warmup=False)).state.engine.load()
    app = deployment(settings, args.replicas, args.min_replicas, args.max_replicas)
    started = connect(args.ray_address)

    def interrupt(*_) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # docker / Kubernetes stopping it: as Ctrl-C (after ray.init's own)
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        serve.run(app, name="dehaze", route_prefix="/")
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        logging.getLogger("service").info("serving on http://%s:%d with Ray Serve; Ctrl-C stops it",
                                          host, settings.port)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        logging.getLogger("service").info("stopping")
        return 0
    finally:
        if started:
            serve.shutdown()
            ray.shutdown()
        else:  # a cluster that outlives this command: take our application off it
            with contextlib.suppress(Exception):
                serve.delete("dehaze")
