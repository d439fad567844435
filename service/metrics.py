"""Prometheus metrics on a per-app :class:`CollectorRegistry` (two apps in one process never clash).

Exposed at ``GET /metrics``:

- ``dehaze_http_requests_total{endpoint, status}``: requests answered, by status code.
- ``dehaze_http_request_duration_seconds{endpoint}``: latency histogram, request start to last byte.
- ``dehaze_in_flight_requests``: HTTP requests being handled right now.
- ``dehaze_inference_running`` / ``dehaze_queue_length``: jobs on a worker / admitted but waiting.
- ``dehaze_inference_seconds{method}``: time spent restoring (decode and encode excluded).
- ``dehaze_rejected_total{reason}``: refusals by error code (busy, payload_too_large, bad_image, ...).
- ``dehaze_ready``: 1 once the model is loaded and warmed up.
"""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ENDPOINTS = ("/", "/dehaze", "/healthz", "/readyz", "/metrics", "/models", "/docs", "/openapi.json")
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """The service's collectors, registered on their own registry.

    Example:
        >>> m = Metrics()
        >>> m.requests.labels(endpoint="/dehaze", status="200").inc()
        >>> b"dehaze_http_requests_total" in m.render()[0]
        True
    """

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "dehaze_http_requests",
            "HTTP requests answered, by endpoint and status code.",
            ["endpoint", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "dehaze_http_request_duration_seconds",
            "HTTP request latency in seconds.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("dehaze_in_flight_requests", "HTTP requests being handled now.", registry=r)
        self.running = Gauge("dehaze_inference_running", "Restorations running on a worker now.", registry=r)
        self.queue = Gauge("dehaze_queue_length", "Admitted requests waiting for a worker.", registry=r)
        self.inference = Histogram(
            "dehaze_inference_seconds",
            "Seconds spent restoring one image.",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.network_runs = Counter(
            "dehaze_network_runs", "Photos the network ran on (re-renders from the haze cache do not count).",
            registry=r,
        )
        self.rejected = Counter("dehaze_rejected", "Requests refused, by reason.", ["reason"], registry=r)
        self.ready = Gauge("dehaze_ready", "1 when the model is loaded and warmed up.", registry=r)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def endpoint_label(path: str) -> str:
    """A bounded label for a path: known endpoints as is, ``/static`` for assets, ``other`` otherwise."""
    if path in ENDPOINTS:
        return path
    if path.startswith("/static/"):
        return "/static"
    if path.startswith("/dehaze/"):
        return "/dehaze/{id}"
    return "other"


class MetricsMiddleware:
    """Pure ASGI middleware counting every HTTP response by status and timing it to the last byte."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        m, label = self.metrics, endpoint_label(scope["path"])
        status = 500  # what the client sees if the app dies before starting a response
        t0 = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        m.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            m.in_flight.dec()
            m.requests.labels(endpoint=label, status=str(status)).inc()
            m.latency.labels(endpoint=label).observe(time.perf_counter() - t0)
