"""Request limits: upload size (checked while streaming), upload time, and admission control.

Uploads are refused with 413 as soon as the declared ``Content-Length`` or the bytes
actually received pass the limit; the multipart parser only ever sees bytes that were
counted first. Admission control keeps at most ``concurrency + queue`` requests inside
the service; the next one is answered 503 with ``Retry-After`` at once, so memory stays
bounded under any load.
"""

from __future__ import annotations

import math
import threading
from collections.abc import AsyncIterator

import anyio
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from service.errors import ApiError

FIELD = "image"  # the multipart field that carries the photo


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def too_large(limit: int, seen: int | None = None) -> ApiError:
    size = f"The upload is {_mb(seen)}" if seen is not None else "The upload is larger than allowed"
    return ApiError(
        413, "payload_too_large", f"{size}; the limit is {_mb(limit)} per request.", {"Connection": "close"}
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
