"""The service's worker side: load the model once, warm it up, restore photos on a thread pool.

All image work goes through :mod:`dehaze.io` (decode, encode) and :mod:`dehaze.inference`
(the :class:`~dehaze.inference.Dehazer` and the classical baseline); this module only
owns the pool, the admission gate and the readiness state.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dehaze.errors import CheckpointError, DehazeError, UnsupportedFormatError
from service.errors import ApiError
from service.limits import Gate, Slot, size_text
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger("service")

MEDIA_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "BMP": "image/bmp",
}
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "TIFF": "tif", "BMP": "bmp"}
NO_MODEL_HINT = (
    "train one (python training/train_dehaze.py) and export it with 'dehaze export CHECKPOINT "
    "-o FILE', or start with --method dcp to serve the classical baseline only"
)


@dataclass
class Restored:
    """One restored photo, encoded, with what the response headers report."""

    body: bytes
    format: str  # PNG, JPEG, WEBP, TIFF or BMP
    width: int
    height: int
    method: str
    inference_seconds: float
    total_seconds: float  # decode + restore + encode
    haze_id: str | None = None  # key of the cached haze estimate (two-scale models), for GET /dehaze/{id}
    network: bool = False  # the network ran for this response (False: the haze came from the cache)

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES.get(self.format, "application/octet-stream")


class HazeCache:
    """The haze estimates of recent uploads, keyed by the upload's SHA-256, with the upload itself.

    A new strength, format or quality for a photo then re-renders it without a new upload and
    without running the network: only the full-size inversion (:func:`dehaze.twoscale.apply_haze`)
    runs again. Bounded by total bytes (the uploads and the working-size maps) and by age.

    Example:
        >>> c = HazeCache(max_bytes=10, ttl=60)
        >>> c.put("k", b"12345", None); c.get("k")[0]
        b'12345'
        >>> c.put("j", b"1234567890", None); c.get("k") is None  # over the budget: the oldest goes
        True
    """

    def __init__(self, max_bytes: int, ttl: float):
        self.max_bytes, self.ttl = max_bytes, ttl
        self._items: OrderedDict[str, tuple[bytes, Any, float, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def _size(data: bytes, haze: Any) -> int:
        return len(data) + (0 if haze is None else haze.a.nbytes + haze.b.nbytes)

    def get(self, key: str) -> tuple[bytes, Any] | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if time.monotonic() - item[2] > self.ttl:
                self._drop(key)
                return None
            self._items.move_to_end(key)
            return item[0], item[1]

    def put(self, key: str, data: bytes, haze: Any) -> None:
        size = self._size(data, haze)
        with self._lock:
            if key in self._items:
                self._drop(key)
            if size > self.max_bytes:
                return
            while self._items and self._bytes + size > self.max_bytes:
                self._drop(next(iter(self._items)))
            self._items[key] = (data, haze, time.monotonic(), size)
            self._bytes += size

    def _drop(self, key: str) -> None:
        self._bytes -= self._items.pop(key)[3]


class Engine:
    """Holds the loaded model and runs restorations on ``settings.concurrency`` worker threads.

    Args:
        settings: the service settings (model path, method, limits, tiling, threads).
        metrics: collectors updated as jobs start and finish.
    """

    def __init__(self, settings: Settings, metrics: Metrics):
        self.settings, self.metrics = settings, metrics
        self.gate = Gate(settings.concurrency, settings.queue)
        self.pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="dehaze-worker")
        self.methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
        self.dehazer: Any = None
        self.model_path: Path | None = None
        self.loaded = False
        self.ready = False
        self.error: str | None = None
        self._load_lock = threading.Lock()
        self.cache = HazeCache(settings.haze_cache_mb * 1_000_000, settings.haze_cache_ttl)

    # -- start-up -----------------------------------------------------------------------------
    def load(self) -> None:
        """Build the restoration functions (blocking; once). Raises CheckpointError when there is no model."""
        with self._load_lock:
            if self.loaded:
                return
            from dehaze.inference import Dehazer, get_method

            s = self.settings
            if s.method == "model":
                path = self._model_path()
                self.dehazer = Dehazer(
                    path,
                    device=s.device,
                    tile=s.tile,
                    threads=s.threads,
                    providers=list(s.providers) if s.providers else None,
                )
                self.model_path = path
                self.methods["model"] = self.dehazer
            self.methods["dcp"] = get_method("dcp")
            self.loaded = True
            log.info("loaded %s", self.summary())

    def _model_path(self) -> Path:
        from dehaze.inference import default_model_path

        if self.settings.model is None:
            try:
                return default_model_path()
            except CheckpointError as exc:  # its message names the file and `dehaze export`
                raise CheckpointError(
                    f"{exc}; a CHECKPOINT comes from python training/train_dehaze.py"
                ) from None
        path = self.settings.model
        if not path.is_file():
            raise CheckpointError(f"model file {path} does not exist; {NO_MODEL_HINT}.")
        return path

    def warm_up(self) -> None:
        """One inference per loaded method on a small grey image, so the first request is not slow."""
        multiple = getattr(self.dehazer, "multiple", 1) or 1
        side = min(getattr(self.dehazer, "tile", 0) or 256, 512)  # one tile: the shape large images run at
        side = max(multiple, side // multiple * multiple)
        rgb = np.full((side, side, 3), 0.5, np.float32)
        t0 = time.perf_counter()
        for name, fn in self.methods.items():
            if name == "model" or self.settings.method == name:
                fn(rgb)
        log.info("warm-up on %dx%d took %.2fs", side, side, time.perf_counter() - t0)

    def prepare(self) -> None:
        """Load and warm up, recording a failure in ``error`` instead of raising (runs in a thread)."""
        try:
            self.load()
            if self.settings.warmup:
                self.warm_up()
            self.ready = True
            self.metrics.ready.set(1)
        except DehazeError as exc:
            self.error = str(exc)
            log.error("model not ready: %s", exc)
        except Exception as exc:  # a bug or a broken runtime: keep the process up, report not-ready
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("model failed to load")

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- description -------------------------------------------------------------------------
    @property
    def default_method(self) -> str:
        return self.settings.method

    @property
    def model_name(self) -> str:
        if self.dehazer is not None:
            return str(
                getattr(self.dehazer, "name", None) or (self.model_path.stem if self.model_path else "model")
            )
        return "dcp"

    def describe_model(self) -> dict[str, Any]:
        """What is loaded: the name, backend, providers and card of the model (None for dcp-only)."""
        d = self.dehazer
        if d is None:
            return {"name": "dcp", "kind": "classical", "description": "dark channel prior (He et al. 2009)"}
        return {
            "name": self.model_name,
            "kind": "network",
            "file": self.model_path.name if self.model_path else None,  # not the server's folders
            "backend": getattr(d, "backend", None),
            "providers": list(getattr(d, "providers", []) or []),
            "multiple": getattr(d, "multiple", None),
            "tile": self.settings.tile,
            "card": getattr(d, "card", None),
        }

    def summary(self) -> str:
        """One log line on what is loaded: name, backend, providers, size and parameters (not the card).

        Example:
            >>> from service.metrics import Metrics
            >>> Engine(Settings(method="dcp"), Metrics()).summary()
            'dcp (dark channel prior, no network)'
        """
        d = self.dehazer
        if d is None:
            return "dcp (dark channel prior, no network)"
        card = getattr(d, "card", None) or {}
        size = card.get("size_bytes") or (self.model_path.stat().st_size if self.model_path else 0)
        n = card.get("parameters")
        params = "" if not n else f", {n / 1e6:.2f}M parameters" if n >= 1e6 else f", {n:,} parameters"
        providers = ", ".join(getattr(d, "providers", []) or []) or "default"
        return (
            f"model {self.model_name} ({self.model_path.name if self.model_path else '?'}, "
            f"{size_text(size)}{params}) on {getattr(d, 'backend', '?')} [{providers}], "
            f"tile {self.settings.tile}, {getattr(d, 'threads', '?')} thread(s)"
        )

    # -- serving -----------------------------------------------------------------------------
    def restore(
        self, data: bytes, method: str, fmt: str | None, quality: int | None, strength: float = 1.0,
        key: str | None = None,
    ) -> Restored:
        """Decode, restore and encode one photo (blocking; runs on a worker thread).

        Args:
            data: the uploaded file's bytes.
            method: ``model`` or ``dcp``.
            fmt: output format (PNG, JPEG, WEBP); None keeps the input's format.
            quality: 1-100 for lossy formats; None uses the encoder's default.
            strength: two-scale models: how much haze to remove, in [0, 1.5].
            key: the upload's cache key when the caller has it (:meth:`rerender`); else it is hashed.
        """
        from dehaze.inference import restore_photo
        from dehaze.io import read_photo

        fn = self.methods.get(method)
        if fn is None:
            raise ApiError(
                400,
                "method_unavailable",
                f"Method {method!r} is not available here; "
                f"this service offers {', '.join(sorted(self.methods))}.",
            )
        two_scale = method == "model" and getattr(fn, "two_scale", None) is not None
        if strength != 1.0 and not two_scale:
            raise ApiError(422, "strength_unavailable",
                           f"The strength applies to a model with an ASM head, not to method {method!r}.")
        t0 = time.perf_counter()
        photo = read_photo(data, max_pixels=self.settings.max_pixels, as_float=False)  # integers: less memory
        t1 = time.perf_counter()
        key, network = None, True
        if two_scale:  # the haze is estimated once per upload and kept for re-renders
            key = key or self.photo_key(data)
            hit = self.cache.get(key)
            network = hit is None
            haze = fn.estimate(photo.rgb) if network else hit[1]
            if network:
                self.cache.put(key, data, haze)
                self.metrics.network_runs.inc()
            fn = functools.partial(fn.apply, haze=haze, strength=strength)
            fn.accepts_integer = True
        out = restore_photo(photo, fn)
        t2 = time.perf_counter()
        body, fmt = self._encode(out, fmt or photo.format, quality)
        h, w = out.rgb.shape[:2]
        return Restored(body, fmt, w, h, method, t2 - t1, time.perf_counter() - t0, key, network)

    @staticmethod
    def photo_key(data: bytes) -> str:
        """The haze cache's key of an upload (its ``X-Dehaze-Id``)."""
        return hashlib.sha256(data).hexdigest()[:32]

    def cached_upload(self, key: str) -> bytes:
        """The upload held under ``key``, else the 404 that says to upload it again."""
        hit = self.cache.get(key)
        if hit is None:
            raise ApiError(404, "unknown_photo", "This photo is no longer (or was never) held by the service; "
                           "upload it again with POST /dehaze.")
        return hit[0]

    def rerender(self, key: str, fmt: str | None, quality: int | None, strength: float) -> Restored:
        """A cached upload restored again at another strength, format or quality, without the network."""
        return self.restore(self.cached_upload(key), "model", fmt, quality, strength, key)

    @staticmethod
    def _encode(out, fmt: str, quality: int | None) -> tuple[bytes, str]:
        from dehaze.io import encode_photo

        kw = {"png_level": 1}  # lossless either way; faster than the default 6, files somewhat larger
        if quality is not None:
            kw["quality"] = quality
        fmt = fmt.upper()
        try:
            return encode_photo(out, fmt, **kw), fmt
        except (UnsupportedFormatError, OSError, ValueError) as exc:  # the encoder's limits (WebP: 16383 px)
            raise ApiError(
                422,
                "cannot_encode",
                f"The restored {out.rgb.shape[1]}x{out.rgb.shape[0]} image "
                f"cannot be written as {fmt} ({exc}); ask for another format, e.g. ?format=png.",
            ) from None

    async def submit(self, slot: Slot, work: Callable[[], Restored], method: str) -> Restored:
        """Run ``work`` (:meth:`restore` or :meth:`rerender` with its arguments) on the pool;
        ``slot`` is handed to the job and freed when it ends."""

        def job() -> Restored:
            self.gate.started()
            self.update_gauges()
            t0 = time.perf_counter()
            try:
                r = work()
                self.metrics.inference.labels(method=method).observe(r.inference_seconds)
                return r
            finally:
                self.gate.finished(time.perf_counter() - t0)
                self.update_gauges()

        fut = self.pool.submit(job)
        slot.handed_off = True
        fut.add_done_callback(lambda _: (slot.release(), self.update_gauges()))
        try:
            return await asyncio.wrap_future(fut)
        except asyncio.CancelledError:
            fut.cancel()  # still queued: never runs; already running: finishes on its own
            raise

    def update_gauges(self) -> None:
        """Copy the gate's running and waiting counts to the Prometheus gauges."""
        self.metrics.running.set(self.gate.running)
        self.metrics.queue.set(self.gate.waiting)
