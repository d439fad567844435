"""The service on Ray Serve (``service.ray_serve``): the same answers as the single-process service.

One Ray instance bound to 127.0.0.1 (2 CPUs, no dashboard) and Ray Serve's HTTP proxy on a free
loopback port serve the module; the reference is the single-process app, served by uvicorn in
this process (``svc.start_app``), with the same settings and the same tiny model.
"""

from __future__ import annotations

import io
import sys
import time

import httpx
import pytest
from PIL import Image

import dehaze.cli.ray_engine as ray_engine
from dehaze.cli import main
from service.settings import Settings


@pytest.fixture(scope="module")
def settings(tiny_model, svc) -> Settings:
    return Settings(model=tiny_model, max_upload_bytes=svc.MAX_UPLOAD, max_pixels=svc.MAX_PIXELS, tile=svc.TILE,
                    queue=16, read_timeout=svc.READ_TIMEOUT, threads=1)


def wait_ready(url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} was not ready within {timeout}s")


@pytest.fixture(scope="module")
def on_ray(settings, svc):
    """The app deployed on Ray Serve (one replica), its proxy on 127.0.0.1; yields its URL."""
    ray = pytest.importorskip("ray")
    from ray import serve

    from service.ray_serve import deployment

    ray_engine.patient_serve_env()
    ray.init(_node_ip_address="127.0.0.1", num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        port = svc.free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(deployment(settings, replicas=1), name="dehaze", route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        yield url
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def single(settings, svc):
    """The single-process service with the same settings (the reference); yields its URL."""
    from service.app import create_app

    s = svc.start_app(create_app(settings))
    yield s.url
    s.stop()


def both(on_ray: str, single: str, method: str, path: str, **kw) -> tuple[httpx.Response, httpx.Response]:
    with httpx.Client(timeout=60) as c:
        return c.request(method, on_ray + path, **kw), c.request(method, single + path, **kw)


def test_post_dehaze_answers_as_the_single_process_service(on_ray, single, svc):
    png = svc.encode(svc.hazy_rgb(60, 90), "PNG")
    ray_r, ref = both(on_ray, single, "POST", "/dehaze", files={"image": ("hazy.png", png, "image/png")})
    assert ray_r.status_code == ref.status_code == 200
    assert ray_r.headers["content-type"] == ref.headers["content-type"] == "image/png"
    assert ray_r.content == ref.content  # the same model, settings and thread count: the same bytes
    for header in ("X-Dehaze-Model", "X-Dehaze-Method", "X-Image-Size", "Content-Disposition"):
        assert ray_r.headers[header] == ref.headers[header], header
    assert Image.open(io.BytesIO(ray_r.content)).size == (90, 60)
    jpeg = svc.encode(svc.hazy_rgb(40, 40), "JPEG")
    r = httpx.post(f"{on_ray}/dehaze?format=webp&quality=80", content=jpeg,
                   headers={"Content-Type": "image/jpeg"}, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp"


def _bad_uploads(svc) -> dict[str, dict]:
    png = svc.encode(svc.hazy_rgb(40, 40), "PNG")
    big = svc.encode(svc.hazy_rgb(40, 40), "PNG") + bytes(svc.MAX_UPLOAD)
    return {
        "empty": dict(content=b"", headers={"Content-Type": "image/png"}),
        "not an image": dict(files={"image": ("notes.png", b"not a photo\n" * 10, "image/png")}),
        "wrong field": dict(files={"photo": ("a.png", png, "image/png")}),
        "too many bytes": dict(content=big, headers={"Content-Type": "image/png"}),
        "strength": dict(files={"image": ("a.png", png, "image/png")}, params={"strength": "2"}),
        "video": dict(content=b"\x00\x00\x00\x18ftypisom" + bytes(64), headers={"Content-Type": "video/mp4"}),
    }


def test_a_bad_upload_gets_the_same_4xx_json(on_ray, single, svc):
    for case, request in _bad_uploads(svc).items():
        ray_r, ref = both(on_ray, single, "POST", "/dehaze", **request)
        assert 400 <= ref.status_code < 500, (case, ref.text)
        assert ray_r.status_code == ref.status_code, (case, ray_r.text)
        assert ray_r.headers["content-type"].startswith("application/json"), case
        assert ray_r.json() == ref.json(), case


def test_operations_endpoints_and_metrics(on_ray, single, svc):
    for path in ("/healthz", "/readyz", "/models"):
        ray_r, ref = both(on_ray, single, "GET", path)
        assert ray_r.status_code == ref.status_code == 200, path
        assert ray_r.json() == ref.json(), path
    text = httpx.get(f"{on_ray}/metrics", timeout=30).text
    assert svc.metric(text, "dehaze_http_requests_total", endpoint="/dehaze", status="200") >= 1
    assert svc.metric(text, "dehaze_http_requests_total", endpoint="/dehaze", status="400") >= 1


def test_replicas_and_autoscaling_options(settings):
    pytest.importorskip("ray")
    from dehaze.errors import ConfigError
    from service.ray_serve import deployment_options

    fixed = deployment_options(settings, replicas=3)
    assert fixed["num_replicas"] == 3 and "autoscaling_config" not in fixed
    assert fixed["max_ongoing_requests"] == settings.concurrency + settings.queue + 1
    assert fixed["ray_actor_options"] == {"num_cpus": 1, "num_gpus": 0}
    scaled = deployment_options(settings, min_replicas=1, max_replicas=4)
    assert "num_replicas" not in scaled
    assert scaled["autoscaling_config"] == {"min_replicas": 1, "initial_replicas": 1, "max_replicas": 4,
                                            "target_ongoing_requests": settings.concurrency}
    with pytest.raises(ConfigError):
        deployment_options(settings, min_replicas=3, max_replicas=2)


def test_serve_engine_ray_without_ray_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    assert main(["serve", "--engine", "ray", "--method", "dcp", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --engine ray needs ray, which is not installed here: pip install 'ssd-dehaze[cluster]'"]


def test_dehaze_serve_engine_ray_command(tiny_model, svc, tmp_path):
    """The command itself: its own Ray instance on 127.0.0.1, two replicas, stopped by SIGTERM."""
    pytest.importorskip("ray")
    server = svc.start_server(tmp_path, ["--engine", "ray", "--replicas", "2", "--model", str(tiny_model)],
                              timeout=300)  # Ray and two replicas: about 20 s on a quiet 2-core machine
    try:
        with server.client() as c:
            r = c.post("/dehaze", files={"image": ("a.png", svc.encode(svc.hazy_rgb(40, 40), "PNG"), "image/png")})
            assert r.status_code == 200 and r.headers["X-Image-Size"] == "40x40"
            assert c.post("/dehaze", content=b"", headers={"Content-Type": "image/png"}).json()["error"] == "empty_body"
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.output()
    assert "service: stopping" in server.output()
