"""A video sent to ``POST /dehaze`` gets 415 saying to use the CLI; recognised by its first bytes,
without PyAV (the serving install has none). The clips are container headers made by hand."""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from service.app import create_app
from service.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def ebml(doctype: bytes) -> bytes:
    body = b"\x42\x82" + bytes([0x80 | len(doctype)]) + doctype  # DocType
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(body)]) + body + bytes(64)


CLIPS = {
    "mp4": (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(64), "video/mp4", "MP4"),
    "mov": (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  " + bytes(64), "video/quicktime", "MOV"),
    "webm": (ebml(b"webm"), "video/webm", "WebM"),
    "mkv": (ebml(b"matroska"), "application/octet-stream", "Matroska"),
    "avi": (b"RIFF" + struct.pack("<I", 1000) + b"AVI LIST" + bytes(64), "video/x-msvideo", "AVI"),
    "ts": ((b"\x47" + bytes(187)) * 4, "video/mp2t", "MPEG-TS"),
}


@pytest.fixture(scope="module")
def server(svc):
    s = svc.start_app(create_app(Settings(method="dcp", warmup=False)))
    yield s
    s.stop()


@pytest.mark.parametrize("kind", sorted(CLIPS))
def test_a_video_upload_gets_415_pointing_to_the_cli(server, kind):
    data, ctype, container = CLIPS[kind]
    with server.client() as c:
        for r in (
            c.post("/dehaze", files={"image": (f"clip.{kind}", data, ctype)}),
            c.post("/dehaze", content=data, headers={"Content-Type": ctype}),
        ):
            assert r.status_code == 415
            body = r.json()
            assert body["error"] == "video_not_supported" and body["status"] == 415
            assert container in body["detail"] and "dehaze restore" in body["detail"]


def test_photos_in_a_video_like_box_are_not_taken_for_videos(server, svc):
    png = svc.encode(svc.hazy_rgb(32, 48), "PNG")
    with server.client() as c:
        assert c.post("/dehaze", files={"image": ("a.png", png, "image/png")}).status_code == 200
        heif = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
        r = c.post("/dehaze", files={"image": ("a.heic", heif, "image/heic")})
        assert (
            r.status_code == 415 and r.json()["error"] == "unsupported_format"
        )  # a photo format, not a video


def test_the_service_refuses_videos_without_pyav():
    """The serving install has no PyAV: recognising a video must not import it."""
    code = textwrap.dedent(
        """
        import sys

        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] == "av":
                    raise ModuleNotFoundError("No module named 'av' (refused by the test)", name="av")

        sys.meta_path.insert(0, Refuse())
        from service.app import create_app
        from service.settings import Settings
        from dehaze.video import sniff_video

        create_app(Settings(method="dcp", warmup=False))
        assert sniff_video(DATA) == "MP4"
        assert "av" not in sys.modules
        print("ok")
        """
    ).replace("DATA", repr(CLIPS["mp4"][0]))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
