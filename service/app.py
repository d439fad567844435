"""FastAPI app: ``POST /dehaze``, health, readiness, metrics, model info, the web page and offline docs.

HTTP concerns only (limits, formats, status codes, metrics); decoding, restoration and
encoding happen in :mod:`service.engine` through :mod:`dehaze.io` and :mod:`dehaze.inference`.

Example:
    >>> from service.settings import Settings
    >>> app = create_app(Settings(method="dcp", warmup=False))
    >>> sorted(r.path for r in app.routes if r.path in ("/dehaze", "/healthz", "/readyz"))
    ['/dehaze', '/healthz', '/readyz']
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Literal

import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from dehaze.io import SUPPORTED_READ, sniff_format
from dehaze.twoscale import MAX_STRENGTH
from dehaze.video import sniff_video
from service.engine import EXTENSIONS, MEDIA_TYPES, Engine
from service.errors import ApiError, install_handlers
from service.limits import FIELD, GuardedH11Protocol, check_content_length, read_image_bytes
from service.metrics import Metrics, MetricsMiddleware
from service.settings import Settings

log = logging.getLogger("service")

STATIC = Path(str(resources.files("service") / "static"))
FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}
ACCEPTABLE = {"image/png": "PNG", "image/jpeg": "JPEG", "image/jpg": "JPEG", "image/webp": "WEBP"}
STRENGTH_QUERY = Query(
    1.0, ge=0.0, le=MAX_STRENGTH,
    description=f"How much haze to remove, 0-{MAX_STRENGTH:g}: 0 returns the photo, 1 the model's estimate, more "
    "removes more (t^strength). Models with an ASM head only.",
)
ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}, "status": {"type": "integer"}},
}
DEHAZE_OPENAPI = {
    "requestBody": {
        "required": True,
        "description": f"The photo, as a multipart file field `{FIELD}` or as the raw body with an image "
        "content type (PNG, JPEG, TIFF, WebP or BMP).",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FIELD],
                    "properties": {FIELD: {"type": "string", "format": "binary"}},
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    "responses": {
        "200": {
            "description": "The restored photo. Headers: `X-Dehaze-Model`, `X-Dehaze-Method`, "
            "`X-Inference-Seconds`, `X-Process-Seconds`, `Server-Timing`.",
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}}
                for t in ("image/png", "image/jpeg", "image/webp", "image/tiff", "image/bmp")
            },
        },
        **{
            str(code): {"description": text, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
            for code, text in [
                (400, "Empty body, not an image or a truncated image"),
                (406, "The Accept header excludes every format the service can write"),
                (408, "The upload did not arrive in time"),
                (413, "Upload over the byte limit, or an image over the pixel limit"),
                (415, "An image format the service cannot read, or a video (dehaze videos with the CLI)"),
                (422, "No file in field `image`, or an invalid query parameter"),
                (503, "Busy (see Retry-After) or the model is not loaded"),
            ]
        },
    },
}


def negotiate(accept: str | None, input_format: str | None) -> str | None:
    """The output format an ``Accept`` header asks for; None keeps the input's format.

    The input's format is kept whenever the header allows it (explicitly or by ``image/*``,
    ``*/*``); otherwise the supported type with the highest q-value is chosen.

    Example:
        >>> negotiate("image/webp", "PNG"), negotiate("*/*", "PNG"), negotiate("image/png;q=0.5, image/jpeg", "TIFF")
        ('WEBP', None, 'JPEG')
    """
    if not accept:
        return None
    prefs: list[tuple[float, str]] = []
    for part in accept.split(","):
        kind, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        prefs.append((q, kind.lower()))
    input_type = MEDIA_TYPES.get(input_format or "", "")
    if any(q > 0 and kind in ("*/*", "image/*", input_type) for q, kind in prefs):
        return None
    ranked = sorted(((q, ACCEPTABLE[k]) for q, k in prefs if q > 0 and k in ACCEPTABLE), key=lambda t: -t[0])
    if not ranked:
        raise ApiError(
            406,
            "not_acceptable",
            f"The Accept header ({accept}) allows none of the formats "
            "this service writes: image/png, image/jpeg, image/webp.",
        )
    return ranked[0][1]


def _download_name(filename: str | None, fmt: str) -> str:
    stem = Path(filename).stem if filename else "photo"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "photo"
    return f"{stem[:80]}-dehazed.{EXTENSIONS.get(fmt, fmt.lower())}"


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service. ``settings`` defaults to :meth:`Settings.from_env`.

    The model loads and warms up in the background at start-up (``/readyz`` answers 503
    until then); call ``app.state.engine.load()`` first to fail fast on a missing model.
    """
    settings = settings or Settings.from_env()
    metrics = Metrics()
    engine = Engine(settings, metrics)
    app = FastAPI(
        title="ssd-dehaze",
        summary="Single-image dehazing: a U-Net trained with an SSD-GAN spectral discriminator.",
        version="0.1.0",
        docs_url=None,  # our own offline page below (the stock one loads its assets from a CDN)
        redoc_url=None,
        lifespan=_lifespan(engine),
    )
    app.state.settings, app.state.engine, app.state.metrics = settings, engine, metrics
    install_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _page_routes(app)
    _operations_routes(app, engine, metrics)
    _models_route(app, engine, settings)
    _dehaze_route(app, engine, settings)
    _rerender_route(app, engine)
    return app


def _lifespan(engine: Engine):
    """Load and warm up the model in the background at start-up; release it at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(asyncio.to_thread(engine.prepare))
        try:
            yield
        finally:
            task.cancel()
            engine.close()

    return lifespan


def _page_routes(app: FastAPI) -> None:
    """The web page and the offline API docs (not in the schema)."""

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(STATIC / "docs.html", headers={"Cache-Control": "no-cache"})


def _operations_routes(app: FastAPI, engine: Engine, metrics: Metrics) -> None:
    """``/healthz``, ``/readyz`` and ``/metrics``."""

    @app.get("/healthz", summary="Liveness: the process answers", tags=["operations"])
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="Readiness: model loaded and warmed up",
        tags=["operations"],
        responses={503: {"description": "Still loading, or loading failed (see detail)"}},
    )
    async def readyz() -> JSONResponse:
        if engine.ready:
            return JSONResponse(
                {"status": "ready", "model": engine.model_name, "method": engine.default_method}
            )
        if engine.error:
            return JSONResponse({"status": "error", "detail": engine.error}, status_code=503)
        return JSONResponse(
            {"status": "loading", "detail": "The model is loading and warming up."},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        tags=["operations"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
    )
    async def prometheus() -> Response:
        engine.update_gauges()
        body, ctype = metrics.render()
        return Response(body, media_type=ctype)


def _models_route(app: FastAPI, engine: Engine, settings: Settings) -> None:
    """``/models``: what is loaded and the service limits."""

    @app.get("/models", summary="What is loaded, with its model card, and the service limits", tags=["model"])
    async def models() -> dict:
        return {
            "ready": engine.ready,
            "method": engine.default_method,
            "methods": sorted(engine.methods) if engine.loaded else [],
            "model": engine.describe_model() if engine.loaded else None,
            "error": engine.error,
            "limits": {
                "max_upload_bytes": settings.max_upload_bytes,
                "max_pixels": settings.max_pixels,
                "concurrency": settings.concurrency,
                "queue": settings.queue,
                "tile": settings.tile,
            },
            "formats": {"input": ["PNG", "JPEG", "TIFF", "WEBP", "BMP"], "output": ["PNG", "JPEG", "WEBP"]},
        }


def _dehaze_route(app: FastAPI, engine: Engine, settings: Settings) -> None:
    """``POST /dehaze``: restore an uploaded photo."""

    @app.post(
        "/dehaze",
        summary="Restore a hazy photo",
        tags=["model"],
        response_class=Response,
        openapi_extra=DEHAZE_OPENAPI,
    )
    async def dehaze(
        request: Request,
        format: Literal["png", "jpeg", "jpg", "webp"] | None = Query(
            None, description="Output format; default: the input's format (or what Accept asks for)."
        ),
        quality: int | None = Query(None, ge=1, le=100, description="1-100, for JPEG and WebP."),
        method: Literal["model", "dcp"] | None = Query(
            None,
            description="`model` (the network) or `dcp` (dark channel prior baseline); "
            "default: the service's method.",
        ),
        strength: float = STRENGTH_QUERY,
    ) -> Response:
        if not engine.loaded:
            if engine.error:
                raise ApiError(503, "model_unavailable", f"The model could not be loaded: {engine.error}")
            raise ApiError(
                503, "loading", "The model is still loading; retry in a moment.", {"Retry-After": "2"}
            )
        method = method or engine.default_method
        if method not in engine.methods:
            raise ApiError(
                400,
                "method_unavailable",
                f"Method {method!r} is not available here; this "
                f"service offers {', '.join(sorted(engine.methods))}.",
            )
        check_content_length(request, settings.max_upload_bytes)  # 413 before anything else, body unread
        slot = engine.gate.enter()  # 503 + Retry-After when concurrency + queue are all taken
        try:
            data, filename = await read_image_bytes(request, settings.max_upload_bytes, settings.read_timeout)
            _refuse_video(data)
            fmt = FORMATS[format] if format else None
            sniffed = sniff_format(data)
            if fmt is None and sniffed in SUPPORTED_READ:  # anything else is refused by read_photo
                fmt = negotiate(request.headers.get("accept"), sniffed)
            r = await engine.submit(slot, functools.partial(engine.restore, data, method, fmt, quality, strength),
                                    method)
        finally:
            if not slot.handed_off:
                slot.release()
        return _image_response(r, filename, engine.model_name)


def _refuse_video(data: bytes) -> None:
    """415 for a video (recognised by its first bytes; the service has no video decoder)."""
    container = sniff_video(data)
    if container is not None:
        raise ApiError(
            415, "video_not_supported",
            f"The upload is a video ({container}); POST /dehaze restores photos. Dehaze videos with the "
            "command line: dehaze restore CLIP -o OUT_DIR (pip install 'ssd-dehaze[video]').",
        )


def _rerender_route(app: FastAPI, engine: Engine) -> None:
    """``GET /dehaze/{photo_id}``: render a recent upload again from its cached haze."""

    @app.get(
        "/dehaze/{photo_id}",
        summary="Restore a recent upload again at another strength, format or quality",
        description="Every `POST /dehaze` with the model answers with `X-Dehaze-Id`. For some minutes "
        "after (`--haze-cache-ttl`), this re-renders that photo from the haze estimated then: no "
        "upload, and the network does not run again (what the web page's strength slider uses). "
        "404 when the photo is no longer held: upload it again.",
        tags=["model"],
        response_class=Response,
        responses={404: {"description": "Unknown or expired photo id",
                         "content": {"application/json": {"schema": ERROR_SCHEMA}}}},
    )
    async def rerender(
        photo_id: str,
        format: Literal["png", "jpeg", "jpg", "webp"] | None = Query(None, description="Output format."),
        quality: int | None = Query(None, ge=1, le=100, description="1-100, for JPEG and WebP."),
        strength: float = STRENGTH_QUERY,
    ) -> Response:
        if not engine.ready:
            raise ApiError(503, "loading", "The model is still loading; retry in a moment.", {"Retry-After": "2"})
        if not re.fullmatch(r"[0-9a-f]{32}", photo_id):
            raise ApiError(404, "unknown_photo", "Not a photo id given by POST /dehaze (X-Dehaze-Id).")
        engine.cached_upload(photo_id)  # an expired photo's 404 need not wait in the queue
        slot = engine.gate.enter()
        try:
            fmt = FORMATS[format] if format else None
            r = await engine.submit(slot, functools.partial(engine.rerender, photo_id, fmt, quality, strength),
                                    "model")
        finally:
            if not slot.handed_off:
                slot.release()
        return _image_response(r, None, engine.model_name)


def _image_response(r, filename: str | None, model_name: str) -> Response:
    """The restored image with the headers that say what ran."""
    headers = {
        "X-Dehaze-Model": _ascii(model_name if r.method == "model" else "dcp"),
        "X-Dehaze-Method": r.method,
        "X-Inference-Seconds": f"{r.inference_seconds:.4f}",
        "X-Process-Seconds": f"{r.total_seconds:.4f}",
        "X-Image-Size": f"{r.width}x{r.height}",
        "Server-Timing": f"inference;dur={r.inference_seconds * 1e3:.1f}, total;dur={r.total_seconds * 1e3:.1f}",
        "Content-Disposition": f'inline; filename="{_download_name(filename, r.format)}"',
        "Cache-Control": "no-store",
        **({"X-Dehaze-Id": r.haze_id} if r.haze_id else {}),
        "X-Network-Ran": "1" if r.network else "0",
    }
    return Response(r.body, media_type=r.media_type, headers=headers)


def make_server(app: FastAPI) -> uvicorn.Server:
    """A uvicorn server for ``app`` whose connections are guarded by :class:`GuardedH11Protocol`.

    Run it with ``.run(sockets=[sock])`` on a socket bound beforehand (``dehaze serve`` binds
    before loading the model, so a taken port fails at once).
    """
    s: Settings = app.state.settings
    protocol = functools.partial(
        GuardedH11Protocol, header_timeout=s.header_timeout, max_connections=s.max_connections
    )
    config = uvicorn.Config(app, http=protocol, log_level=s.log_level, timeout_graceful_shutdown=5)
    return uvicorn.Server(config)
