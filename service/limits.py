"""Request limits: header time and open connections, upload size and time, and admission control.

Every connection must finish its request headers within ``header_timeout`` seconds and at most
``max_connections`` are open at once (:class:`GuardedH11Protocol`), so slow or idle clients
cannot pile up sockets. Uploads are refused with 413 as soon as the declared ``Content-Length`` or the bytes
actually received pass the limit; the multipart parser only ever sees bytes that were
counted first. Admission control keeps at most ``concurrency + queue`` requests inside
the service; the next one is answered 503 with ``Retry-After`` at once, so memory stays
bounded under any load.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import AsyncIterator

import anyio
import h11
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from uvicorn.protocols.http.h11_impl import H11Protocol

from service.errors import ApiError

FIELD = "image"  # the multipart field that carries the photo


def size_text(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def too_large(limit: int, seen: int | None = None) -> ApiError:
    size = f"The upload is {size_text(seen)}" if seen is not None else "The upload is larger than allowed"
    return ApiError(
        413,
        "payload_too_large",
        f"{size}; the limit is {size_text(limit)} per request.",
        {"Connection": "close"},
    )


def check_content_length(request: Request, limit: int) -> None:
    """Refuse at once (413) when the declared body size is over ``limit``; 400 when it is not a number."""
    raw = request.headers.get("content-length")
    if raw is None:
        return
    try:
        n = int(raw)
    except ValueError:
        raise ApiError(400, "bad_request", f"Content-Length must be a number, got {raw!r}.") from None
    if n > limit:
        raise too_large(limit, n)


async def limited_stream(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The raw body chunks, raising 413 the moment their total passes ``limit``."""
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                raise too_large(limit)
            yield chunk
    except ClientDisconnect:
        raise ApiError(
            400,
            "client_disconnected",
            "The client closed the connection during the upload.",
            {"Connection": "close"},
        ) from None


async def read_image_bytes(request: Request, limit: int, timeout: float) -> tuple[bytes, str | None]:
    """Receive the photo from a multipart field ``image`` or from a raw body.

    Returns:
        The file bytes and the file name the client gave (None for a raw body).

    Raises:
        ApiError: 413 over the limit, 408 too slow, 422 no ``image`` file field, 400 empty or broken body.
    """
    check_content_length(request, limit)
    ctype = request.headers.get("content-type", "")
    try:
        with anyio.fail_after(timeout):
            if ctype.lower().startswith("multipart/form-data"):
                return await _read_multipart(request, limit)
            data = bytearray()
            async for chunk in limited_stream(request, limit):
                data += chunk
    except TimeoutError:
        raise ApiError(
            408,
            "upload_timeout",
            f"The upload did not arrive within {timeout:g} seconds.",
            {"Connection": "close"},
        ) from None
    if not data:
        raise ApiError(
            400,
            "empty_body",
            "The request has no image: the body is empty. Send the photo "
            f"as a multipart file field '{FIELD}' or as the raw body with an image content type.",
        )
    return bytes(data), None


async def _read_multipart(request: Request, limit: int) -> tuple[bytes, str | None]:
    parser = MultiPartParser(request.headers, limited_stream(request, limit), max_files=4, max_fields=16)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ApiError(400, "bad_multipart", f"The multipart body could not be read: {exc.message}") from None
    try:
        item = form.get(FIELD)
        if not isinstance(item, UploadFile):
            names = sorted({k for k, v in form.multi_items() if isinstance(v, UploadFile)})
            got = f"got file field(s) {', '.join(repr(n) for n in names)}" if names else "got no file field"
            if item is not None:
                got = f"'{FIELD}' is a text field, not a file"
            raise ApiError(
                422, "missing_field", f"The upload needs a file in the multipart field '{FIELD}' ({got})."
            )
        data = await item.read()
        if not data:
            raise ApiError(400, "empty_file", f"The uploaded file in field '{FIELD}' is empty.")
        return data, item.filename
    finally:
        await form.close()


class Gate:
    """Admission control: at most ``concurrency`` jobs run and ``queue`` wait; more are refused.

    Thread-safe counters; the jobs themselves run on a thread pool with ``concurrency``
    workers, so the pool bounds what runs and the gate bounds what waits.

    Example:
        >>> g = Gate(concurrency=1, queue=0)
        >>> g.try_enter(), g.try_enter()
        (True, False)
        >>> g.leave(); g.try_enter()
        True
    """

    def __init__(self, concurrency: int, queue: int):
        self.concurrency, self.queue = concurrency, queue
        self._lock = threading.Lock()
        self.admitted = 0  # requests inside: uploading, waiting for a worker, or running
        self.running = 0
        self.ewma = 1.0  # smoothed seconds per job, for Retry-After

    @property
    def waiting(self) -> int:
        return max(self.admitted - self.running, 0)

    def try_enter(self) -> bool:
        with self._lock:
            if self.admitted >= self.concurrency + self.queue:
                return False
            self.admitted += 1
            return True

    def enter(self) -> Slot:
        """A slot for one request, or 503 with ``Retry-After`` when all are taken."""
        if not self.try_enter():
            raise self.full()
        return Slot(self)

    def leave(self) -> None:
        with self._lock:
            self.admitted -= 1

    def started(self) -> None:
        with self._lock:
            self.running += 1

    def finished(self, seconds: float) -> None:
        with self._lock:
            self.running -= 1
            self.ewma = 0.8 * self.ewma + 0.2 * seconds

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the backlog divided by the workers, at least 1."""
        return int(min(max(math.ceil(self.ewma * (self.waiting + 1) / self.concurrency), 1), 120))

    def full(self) -> ApiError:
        return ApiError(
            503,
            "busy",
            f"The service is busy ({self.admitted} requests in progress, "
            f"{self.concurrency} at a time, {self.queue} may wait). Retry in a moment.",
            {"Retry-After": str(self.retry_after()), "Connection": "close"},
        )  # body left unread


class Slot:
    """One admitted request's place in the :class:`Gate`; ``release`` is idempotent.

    Once a job is submitted the slot is ``handed_off`` to it and freed when the job ends,
    so a client that hangs up cannot free a slot while its inference still runs.
    """

    def __init__(self, gate: Gate):
        self.gate, self.handed_off, self._held = gate, False, True
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if not self._held:
                return
            self._held = False
        self.gate.leave()


def raw_refusal(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> bytes:
    """A complete ``Connection: close`` HTTP response with the API's JSON error body, as bytes.

    For refusals made below the ASGI app, where there is no request to answer through it.

    Example:
        >>> raw_refusal(408, "header_timeout", "Too slow.").split(b"\\r\\n")[0]
        b'HTTP/1.1 408 Request Timeout'
    """
    from http import HTTPStatus

    body = json.dumps({"error": code, "detail": detail, "status": status}).encode()
    head = {"content-type": "application/json", "content-length": str(len(body)), "connection": "close"}
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    lines += [f"{k}: {v}" for k, v in {**head, **(headers or {})}.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for the request headers and a cap on open connections.

    uvicorn closes idle keep-alive connections, but not one that sends part of its headers and
    then waits ("slowloris"): such sockets would stay open for good. Here a connection that has
    not sent complete request headers ``header_timeout`` seconds after it opened (or after the
    first byte of its next request) is closed, with a 408 when it had sent something; a byte now
    and then does not extend the deadline. A connection beyond ``max_connections`` open ones is
    answered 503 and closed at once. Pass it to uvicorn as
    ``http=functools.partial(GuardedH11Protocol, header_timeout=5, max_connections=100)``.
    """

    def __init__(self, *args, header_timeout: float, max_connections: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_timeout, self.max_connections = header_timeout, max_connections
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self.logger.warning(
                "refused a connection: %d open, the limit is %d",
                len(self.connections) - 1,
                self.max_connections,
            )
            detail = f"The service has {self.max_connections} connections open, its limit; retry in a moment."
            transport.write(raw_refusal(503, "too_many_connections", detail, {"retry-after": "1"}))
            transport.close()
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm()  # part of the next request's headers: the deadline runs from its first byte
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is not h11.IDLE or self.transport.is_closing():
            return
        if self.conn.trailing_data[0]:  # a request was begun: say why it ends
            self.logger.info("closed a connection whose request headers took over %gs", self.header_timeout)
            detail = f"The request headers did not arrive within {self.header_timeout:g} seconds."
            self.transport.write(raw_refusal(408, "header_timeout", detail))
        self.transport.close()
