"""Strength and re-renders through the HTTP API, on a two-scale (ASM-head) model."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def decode(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def network_runs(client, svc) -> float:
    return svc.metric(client.get("/metrics").text, "dehaze_network_runs_total")


def test_strength_0_returns_the_photo_and_1_the_model(asm_server, svc):
    photo = svc.hazy_rgb(120, 160, seed=5)
    png = svc.encode(photo, "PNG")
    with asm_server.client() as c:
        zero = c.post("/dehaze?strength=0", content=png, headers={"Content-Type": "image/png"})
        assert zero.status_code == 200, zero.text
        assert np.array_equal(decode(zero.content), photo)
        full = c.post("/dehaze", content=png, headers={"Content-Type": "image/png"})
        one = c.post("/dehaze?strength=1", content=png, headers={"Content-Type": "image/png"})
        assert np.array_equal(decode(full.content), decode(one.content))
        assert np.abs(decode(full.content).astype(int) - photo).mean() > 2  # the model changes the photo


def test_a_new_strength_re_renders_without_upload_or_network(asm_server, svc):
    png = svc.encode(svc.hazy_rgb(90, 130, seed=6), "PNG")
    with asm_server.client() as c:
        first = c.post("/dehaze?strength=1", files={"image": ("street.png", png, "image/png")})
        assert first.status_code == 200 and first.headers["X-Network-Ran"] == "1"
        photo_id = first.headers["X-Dehaze-Id"]
        runs = network_runs(c, svc)
        half = c.get(f"/dehaze/{photo_id}?strength=0.5")
        assert half.status_code == 200 and half.headers["X-Network-Ran"] == "0"
        assert half.headers["X-Dehaze-Id"] == photo_id
        more = c.get(f"/dehaze/{photo_id}?strength=1.5&format=jpeg&quality=80")
        assert more.headers["content-type"] == "image/jpeg"
        assert network_runs(c, svc) == runs  # neither ran the network
        gap = lambda r: np.abs(decode(r.content).astype(int) - decode(png).astype(int)).mean()  # noqa: E731
        assert gap(half) < gap(first) < gap(more)
        again = c.post("/dehaze?strength=0.5", files={"image": ("street.png", png, "image/png")})
        assert again.headers["X-Network-Ran"] == "0"  # the same upload: its haze is still held
        assert np.array_equal(decode(again.content), decode(half.content))


def test_bad_strength_and_unknown_photo(asm_server, server, svc):
    png = svc.encode(svc.hazy_rgb(40, 60), "PNG")
    with asm_server.client() as c:
        for bad in ("1.6", "-0.1", "abc", "nan"):
            r = c.post(f"/dehaze?strength={bad}", content=png, headers={"Content-Type": "image/png"})
            assert r.status_code == 422, (bad, r.status_code)
            assert "strength" in r.text
        r = c.post("/dehaze?strength=2", content=png, headers={"Content-Type": "image/png"})
        assert "1.5" in r.json()["detail"]
        r = c.get("/dehaze/" + "0" * 32)
        assert r.status_code == 404 and "upload it again" in r.json()["detail"]
        assert c.get("/dehaze/not-an-id").status_code == 404
        r = c.post("/dehaze?method=dcp&strength=0.5", content=png, headers={"Content-Type": "image/png"})
        assert r.status_code == 422 and "strength" in r.json()["detail"]
    with server.client() as c:  # an image-head model has no strength and no re-renders
        r = c.post("/dehaze?strength=0.5", content=png, headers={"Content-Type": "image/png"})
        assert r.status_code == 422
        ok = c.post("/dehaze", content=png, headers={"Content-Type": "image/png"})
        assert ok.status_code == 200 and "X-Dehaze-Id" not in ok.headers
