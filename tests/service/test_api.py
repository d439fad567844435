"""POST /dehaze against a real uvicorn process: round trips, formats, every bad input, metrics."""

from __future__ import annotations

import io
import json
import socket
import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image


def decode(body: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(body))
    img.load()
    return img


def post(server, data: bytes, name: str = "photo.png", ctype: str = "image/png", params=None, **kw):
    with server.client() as c:
        return c.post("/dehaze", files={"image": (name, data, ctype)}, params=params, **kw)


# -- round trips -----------------------------------------------------------------------------------


def test_png_round_trip_keeps_size_and_format(server, svc):
    r = post(server, svc.encode(svc.hazy_rgb(100, 150), "PNG"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    img = decode(r.content)
    assert (img.format, img.size, img.mode) == ("PNG", (150, 100), "RGB")
    assert r.headers["x-dehaze-model"] == "tiny-dehaze"
    assert r.headers["x-dehaze-method"] == "model"
    assert float(r.headers["x-inference-seconds"]) > 0
    assert r.headers["x-image-size"] == "150x100"
    assert "photo-dehazed.png" in r.headers["content-disposition"]


def test_jpeg_stays_jpeg_and_exif_orientation_is_applied(server, svc):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    data = svc.encode(svc.hazy_rgb(60, 90), "JPEG", quality=90, exif=exif.tobytes())
    r = post(server, data, "p.jpg", "image/jpeg")
    assert r.status_code == 200, r.text
    img = decode(r.content)
    assert r.headers["content-type"] == "image/jpeg"
    assert (img.format, img.size) == ("JPEG", (60, 90))  # width and height swapped by the orientation


def test_rgba_png_keeps_alpha_exactly(server, svc):
    rgb = svc.hazy_rgb(70, 80)
    alpha = np.tile(np.linspace(0, 255, 80).astype(np.uint8), (70, 1))
    r = post(server, svc.encode(np.dstack([rgb, alpha]), "PNG"))
    assert r.status_code == 200, r.text
    img = decode(r.content)
    assert img.mode == "RGBA" and img.size == (80, 70)
    np.testing.assert_array_equal(np.asarray(img)[..., 3], alpha)


def test_grayscale_stays_grayscale(server, svc):
    gray = svc.hazy_rgb(64, 64).mean(axis=2).astype(np.uint8)
    r = post(server, svc.encode(gray, "PNG"))
    assert r.status_code == 200, r.text
    img = decode(r.content)
    assert img.mode == "L" and img.size == (64, 64)


def test_16bit_png_stays_16bit(server, svc):
    rgb16 = svc.hazy_rgb(40, 50).astype(np.uint16) * 257
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    assert ok
    r = post(server, buf.tobytes())
    assert r.status_code == 200, r.text
    out = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == (40, 50, 3)


def test_large_image_runs_tiled_and_matches_size(server, svc):
    # 300x200 with 160-pixel tiles: several overlapping tiles blended back to the full size
    r = post(server, svc.encode(svc.hazy_rgb(200, 300), "PNG"))
    assert r.status_code == 200, r.text
    assert decode(r.content).size == (300, 200)


def test_raw_body_and_format_choices(server, svc):
    data = svc.encode(svc.hazy_rgb(48, 64), "PNG")
    with server.client() as c:
        r = c.post("/dehaze", content=data, headers={"Content-Type": "image/png"})
        assert r.status_code == 200 and decode(r.content).format == "PNG"
        r = c.post("/dehaze", params={"format": "webp"}, content=data, headers={"Content-Type": "image/png"})
        assert r.headers["content-type"] == "image/webp" and decode(r.content).format == "WEBP"
        r = c.post("/dehaze", content=data, headers={"Content-Type": "image/png", "Accept": "image/jpeg"})
        assert r.headers["content-type"] == "image/jpeg" and decode(r.content).format == "JPEG"
        r = c.post("/dehaze", content=data, headers={"Content-Type": "image/png", "Accept": "*/*"})
        assert r.headers["content-type"] == "image/png"
        r = c.post(
            "/dehaze", content=data, headers={"Content-Type": "image/png", "Accept": "application/json"}
        )
        assert r.status_code == 406 and r.json()["error"] == "not_acceptable"
        small = c.post(
            "/dehaze",
            params={"format": "jpeg", "quality": 10},
            content=data,
            headers={"Content-Type": "image/png"},
        )
        large = c.post(
            "/dehaze",
            params={"format": "jpeg", "quality": 98},
            content=data,
            headers={"Content-Type": "image/png"},
        )
        assert small.status_code == large.status_code == 200
        assert len(small.content) < len(large.content)


def test_dcp_method(server, svc):
    r = post(server, svc.encode(svc.hazy_rgb(50, 60), "PNG"), params={"method": "dcp"})
    assert r.status_code == 200, r.text
    assert r.headers["x-dehaze-method"] == "dcp" and r.headers["x-dehaze-model"] == "dcp"
    assert decode(r.content).size == (60, 50)


# -- bad input: always a 4xx with a JSON sentence ------------------------------------------------


def assert_refused(r, status: int, code: str | None = None, words: str | None = None):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["status"] == status and body["detail"]
    if code:
        assert body["error"] == code
    if words:
        assert words.lower() in body["detail"].lower(), body


def _png_header_claiming(w: int, h: int) -> bytes:
    """A 1x1 PNG whose header claims ``w`` x ``h`` pixels."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", w, h)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # keep the IHDR checksum valid
    return bytes(data)


def _png_bomb(side: int) -> bytes:
    """A valid grayscale PNG of ``side``x``side`` black pixels: tiny file, huge image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte 0 + side zero pixels
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "case",
    [
        "empty_raw",
        "empty_file",
        "not_image",
        "truncated",
        "gif",
        "wrong_field",
        "text_field",
        "bad_quality",
        "bad_format",
        "too_many_pixels",
        "bomb",
        "huge_header",
        "too_wide_for_webp",
    ],
)
def test_bad_input_is_a_clear_4xx(server, svc, case):
    png = svc.encode(svc.hazy_rgb(40, 40), "PNG")
    with server.client() as c:
        if case == "empty_raw":
            assert_refused(
                c.post("/dehaze", content=b"", headers={"Content-Type": "image/png"}), 400, "empty_body"
            )
        elif case == "empty_file":
            assert_refused(post(server, b""), 400, "empty_file", "empty")
        elif case == "not_image":
            assert_refused(
                post(server, b"this is a text file, not a photo\n" * 10, "notes.png"),
                400,
                "bad_image",
                "not an image",
            )
        elif case == "truncated":
            jpg = svc.encode(svc.hazy_rgb(64, 64), "JPEG")
            assert_refused(
                post(server, jpg[: len(jpg) // 2], "cut.jpg", "image/jpeg"), 400, "bad_image", "truncated"
            )
        elif case == "gif":
            buf = io.BytesIO()
            Image.new("P", (8, 8)).save(buf, "GIF")
            assert_refused(
                post(server, buf.getvalue(), "a.gif", "image/gif"), 415, "unsupported_format", "GIF"
            )
        elif case == "wrong_field":
            r = c.post("/dehaze", files={"photo": ("a.png", png, "image/png")})
            assert_refused(r, 422, "missing_field", "'image'")
            assert "'photo'" in r.json()["detail"]
        elif case == "text_field":
            assert_refused(
                c.post("/dehaze", data={"image": "hello"}, files={"other": ("a.png", png)}),
                422,
                "missing_field",
            )
        elif case == "bad_quality":
            assert_refused(post(server, png, params={"quality": 0}), 422, "invalid_parameter", "quality")
        elif case == "bad_format":
            assert_refused(post(server, png, params={"format": "gif"}), 422, "invalid_parameter", "format")
        elif case == "too_many_pixels":
            big = svc.encode(np.zeros((1100, 1000), np.uint8), "PNG")  # 1.1 Mpx > 1 Mpx limit, few kB
            assert len(big) < svc.MAX_UPLOAD
            assert_refused(post(server, big), 413, "image_too_large", "too large")
        elif case == "too_wide_for_webp":  # WebP stores at most 16383 pixels a side
            wide = svc.encode(np.full((8, 17000, 3), 128, np.uint8), "PNG")
            assert_refused(
                post(server, wide, params={"format": "webp", "method": "dcp"}),
                422,
                "cannot_encode",
                "format=png",
            )
        elif case == "bomb":
            bomb = _png_bomb(12_000)  # 144 Mpx of zeros in ~140 kB
            assert len(bomb) < svc.MAX_UPLOAD
            assert_refused(post(server, bomb), 413, "image_too_large")
        elif case == "huge_header":  # 400 Mpx claimed, over Pillow's own limit too: ours is reported
            r = post(server, _png_header_claiming(20000, 20000))
            assert_refused(r, 413, "image_too_large", f"limit of {svc.MAX_PIXELS:,} pixels")
            assert "20000x20000 = 400,000,000 pixels" in r.json()["detail"] and "DOS" not in r.text


def _raw_http(port: int, head: bytes, body_parts: list[bytes] = (), timeout: float = 20) -> tuple[int, dict]:
    """Send a request whose body is never finished; return the status and JSON the server answers with."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        for part in body_parts:
            s.sendall(part)
        data = b""
        while b"\r\n\r\n" not in data:
            got = s.recv(65536)
            if not got:
                break
            data += got
        header, _, rest = data.partition(b"\r\n\r\n")
        length = int(
            next(
                (
                    ln.split(b":")[1]
                    for ln in header.split(b"\r\n")
                    if ln.lower().startswith(b"content-length")
                ),
                b"0",
            )
        )
        while len(rest) < length:
            got = s.recv(65536)
            if not got:
                break
            rest += got
    status = int(header.split(b" ")[1])
    return status, json.loads(rest[:length]) if length else {}


def _chunked(payload: bytes, size: int = 64 * 1024) -> list[bytes]:
    return [
        b"%x\r\n%s\r\n" % (len(payload[i : i + size]), payload[i : i + size])
        for i in range(0, len(payload), size)
    ]


def test_declared_content_length_over_limit_is_refused_before_any_body(server, svc):
    head = b"POST /dehaze HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n" % (
        50 * svc.MAX_UPLOAD
    )
    status, body = _raw_http(server.port, head)  # no body byte is sent at all
    assert status == 413 and body["error"] == "payload_too_large"


@pytest.mark.parametrize("kind", ["raw", "multipart"])
def test_streamed_upload_over_limit_is_refused_while_streaming(server, svc, kind):
    # chunked, no Content-Length; the body is never finished (no last chunk), so the 413 can only
    # come from counting bytes as they arrive. The last chunk sent is the one that crosses the limit.
    if kind == "raw":
        ctype, prefix = b"image/png", b""
    else:
        ctype = b"multipart/form-data; boundary=XyZ"
        prefix = (
            b'--XyZ\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n'
            b"Content-Type: image/png\r\n\r\n"
        )
    payload = prefix + b"\x89PNG\r\n\x1a\n" + bytes(svc.MAX_UPLOAD + 10 - len(prefix) - 8)
    head = (
        b"POST /dehaze HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % ctype
    )
    status, body = _raw_http(server.port, head, _chunked(payload))
    assert status == 413 and body["error"] == "payload_too_large", body


def test_stalled_upload_times_out_and_frees_its_slot(server, svc):
    # declares 1000 bytes, sends 10, then stalls: answered 408 after the read timeout, not held forever
    head = b"POST /dehaze HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n"
    t0 = time.monotonic()
    status, body = _raw_http(server.port, head, [b"\x89PNG\r\n\x1a\n\x00\x00"])
    assert status == 408 and body["error"] == "upload_timeout"
    assert svc.READ_TIMEOUT - 0.5 < time.monotonic() - t0 < svc.READ_TIMEOUT + 10
    with server.client() as c:
        assert svc.metric(c.get("/metrics").text, "dehaze_queue_length") == 0


def test_service_survives_bad_input(server, svc):
    with server.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        r = c.post(
            "/dehaze", files={"image": ("a.png", svc.encode(svc.hazy_rgb(32, 32), "PNG"), "image/png")}
        )
        assert r.status_code == 200
        text = c.get("/metrics").text
    assert svc.metric(text, "dehaze_http_requests_total", endpoint="/dehaze", status="500") == 0


# -- the other endpoints ---------------------------------------------------------------------------


def test_health_ready_models_docs(server, tiny_model):
    with server.client() as c:
        assert c.get("/healthz").status_code == 200
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        info = c.get("/models").json()
        assert info["ready"] and info["method"] == "model" and info["methods"] == ["dcp", "model"]
        assert info["model"]["name"] == "tiny-dehaze" and info["model"]["file"] == tiny_model.name
        assert str(tiny_model.parent) not in c.get("/models").text  # no folder of the server's
        assert info["model"]["multiple"] == 8 and "card" in info["model"]
        assert info["limits"]["max_upload_bytes"] == 1_000_000
        spec = c.get("/openapi.json").json()
        assert "multipart/form-data" in spec["paths"]["/dehaze"]["post"]["requestBody"]["content"]
        docs = c.get("/docs")
        assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
        nf = c.get("/no-such-page")
        assert nf.status_code == 404 and nf.json()["error"] == "not_found"


def test_start_up_logs_a_one_line_model_summary(server, tiny_model):
    params = json.loads(tiny_model.with_suffix(".json").read_text())["parameters"]
    loaded = [ln for ln in server.output().splitlines() if "service: loaded" in ln]
    assert len(loaded) == 1 and len(loaded[0]) < 250, loaded
    line = loaded[0]
    assert "tiny-dehaze.onnx" in line and "onnxruntime" in line and "CPUExecutionProvider" in line
    assert f"{params:,} parameters" in line and " kB" in line and "{" not in line  # a summary, not the card


def test_pages_use_no_external_resources(server):
    with server.client() as c:
        page = c.get("/").text
        assets = [c.get(f"/static/{n}").text for n in ("app.js", "app.css", "docs.js", "docs.css")]
    for text in [page, *assets]:
        assert "http://" not in text and "https://" not in text and "//cdn" not in text


def test_metrics_count_what_happened(server, svc):
    png = svc.encode(svc.hazy_rgb(32, 32), "PNG")
    with server.client() as c:
        before = c.get("/metrics").text
        for _ in range(3):
            assert c.post("/dehaze", files={"image": ("a.png", png, "image/png")}).status_code == 200
        for _ in range(2):
            assert c.post("/dehaze", files={"image": ("a.png", b"nope", "image/png")}).status_code == 400
        assert c.post("/dehaze", files={"wrong": ("a.png", png, "image/png")}).status_code == 422
        after = c.get("/metrics").text

    def delta(name, **labels):
        return svc.metric(after, name, **labels) - svc.metric(before, name, **labels)

    assert delta("dehaze_http_requests_total", endpoint="/dehaze", status="200") == 3
    assert delta("dehaze_http_requests_total", endpoint="/dehaze", status="400") == 2
    assert delta("dehaze_http_requests_total", endpoint="/dehaze", status="422") == 1
    assert delta("dehaze_http_request_duration_seconds_count", endpoint="/dehaze") == 6
    assert delta("dehaze_inference_seconds_count", method="model") == 3
    assert delta("dehaze_rejected_total", reason="bad_image") == 2
    assert delta("dehaze_rejected_total", reason="missing_field") == 1
    assert svc.metric(after, "dehaze_ready") == 1
    assert svc.metric(after, "dehaze_queue_length") == 0
    assert svc.metric(after, "dehaze_in_flight_requests") == 1  # the /metrics request itself
