"""Over the concurrency limit: 503 with Retry-After, health stays prompt, and the service recovers.

The service runs in this process with one inference at a time and one waiting place, and its
model is wrapped so that each inference takes 1.5 s longer, so the overflow does not depend on
the machine's speed.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from service.app import create_app
from service.settings import Settings

DELAY = 1.5


@pytest.fixture(scope="module")
def slow_server(tiny_model, svc):
    app = create_app(Settings(model=tiny_model, concurrency=1, queue=1, threads=1, warmup=False))
    engine = app.state.engine
    engine.load()
    model = engine.methods["model"]

    def slow_model(rgb):
        time.sleep(DELAY)
        return model(rgb)

    engine.methods["model"] = slow_model
    s = svc.start_app(app)
    yield s
    s.stop()


def test_overflow_gets_503_then_recovers(slow_server, svc):
    png = svc.encode(svc.hazy_rgb(32, 48), "PNG")
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def fire():
        with slow_server.client() as c:
            r = c.post("/dehaze", files={"image": ("a.png", png, "image/png")})
        with lock:
            results.append(r)

    with slow_server.client() as c:
        before = c.get("/metrics").text
    threads = [threading.Thread(target=fire) for _ in range(5)]
    for t in threads:
        t.start()
        time.sleep(0.05)  # all five arrive well within one inference (1.5 s)

    # while the worker is busy, health and metrics answer at once
    time.sleep(0.3)
    with slow_server.client() as c:
        t0 = time.perf_counter()
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200
        busy = c.get("/metrics").text
        assert time.perf_counter() - t0 < 1.0
    assert svc.metric(busy, "dehaze_inference_running") == 1
    assert svc.metric(busy, "dehaze_queue_length") == 1

    for t in threads:
        t.join(60)
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 200, 503, 503, 503], codes
    for r in results:
        if r.status_code == 503:
            assert r.json()["error"] == "busy" and "busy" in r.json()["detail"]
            assert int(r.headers["retry-after"]) >= 1

    # recovered: the next request is served
    with slow_server.client() as c:
        r = c.post("/dehaze", files={"image": ("a.png", png, "image/png")})
        assert r.status_code == 200
        after = c.get("/metrics").text
    assert (
        svc.metric(after, "dehaze_http_requests_total", endpoint="/dehaze", status="503")
        - svc.metric(before, "dehaze_http_requests_total", endpoint="/dehaze", status="503")
        == 3
    )
    assert (
        svc.metric(after, "dehaze_http_requests_total", endpoint="/dehaze", status="200")
        - svc.metric(before, "dehaze_http_requests_total", endpoint="/dehaze", status="200")
        == 3
    )
    assert svc.metric(after, "dehaze_queue_length") == 0
    assert svc.metric(after, "dehaze_inference_running") == 0
