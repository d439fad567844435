"""HTTP errors: every refusal is a JSON body ``{"error": code, "detail": sentence, "status": n}``.

User mistakes raised by the library (:class:`dehaze.errors.DehazeError`) map to 4xx codes
here, so the endpoints never turn bad input into a 500.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dehaze.errors import (
    CheckpointError,
    ConfigError,
    DehazeError,
    ImageTooLargeError,
    InputError,
    UnsupportedFormatError,
)

log = logging.getLogger("service")


class ApiError(Exception):
    """A refusal with an HTTP status, a short machine code and one plain sentence.

    Example:
        >>> e = ApiError(413, "payload_too_large", "The upload is larger than 1 MB.")
        >>> e.status, e.code
        (413, 'payload_too_large')
    """

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers or {}


def _sentence(exc: Exception) -> str:
    """The library's message without the ``image: `` source prefix it adds for in-memory files."""
    text = str(exc).removeprefix("image: ")
    return text[:1].upper() + text[1:]


def from_dehaze_error(exc: DehazeError) -> ApiError:
    """The HTTP form of a library error: too large 413, unsupported 415, other input 400."""
    if isinstance(exc, ImageTooLargeError):
        return ApiError(413, "image_too_large", _sentence(exc))
    if isinstance(exc, UnsupportedFormatError):
        return ApiError(415, "unsupported_format", _sentence(exc))
    if isinstance(exc, InputError):
        return ApiError(400, "bad_image", _sentence(exc))
    if isinstance(exc, (CheckpointError, ConfigError)):
        return ApiError(503, "model_unavailable", _sentence(exc))
    return ApiError(400, "bad_request", _sentence(exc))


def error_response(err: ApiError) -> JSONResponse:
    body = {"error": err.code, "detail": err.detail, "status": err.status}
    return JSONResponse(body, status_code=err.status, headers=err.headers)


def install_handlers(app: FastAPI) -> None:
    """Route every exception type to a JSON body; unexpected ones are logged and answered 500."""

    def refuse(request: Request, err: ApiError) -> JSONResponse:
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.rejected.labels(reason=err.code).inc()
        return error_response(err)

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return refuse(request, exc)

    @app.exception_handler(DehazeError)
    async def _dehaze(request: Request, exc: DehazeError) -> JSONResponse:
        return refuse(request, from_dehaze_error(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "body", "header"))
            parts.append(f"{where}: {e.get('msg', 'invalid value')}" if where else e.get("msg", "invalid"))
        detail = "; ".join(parts) or "The request parameters are not valid."
        return refuse(request, ApiError(422, "invalid_parameter", detail))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            detail = f"There is no page at {request.url.path}; see /docs for the API."
        return error_response(
            ApiError(
                exc.status_code, codes.get(exc.status_code, "http_error"), detail, dict(exc.headers or {})
            )
        )

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error while serving %s %s", request.method, request.url.path)
        return error_response(
            ApiError(500, "internal_error", "The service failed unexpectedly; the error was logged.")
        )
