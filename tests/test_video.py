"""dehaze.video: the temporal stream, the transcoder and video recognition, on clips made here."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest

av = pytest.importorskip("av", reason="PyAV (the [video] extra) is not installed")

from media import decode, make_clip  # noqa: E402

from dehaze.errors import ConfigError, InputError, UnsupportedFormatError  # noqa: E402
from dehaze.inference import Dehazer  # noqa: E402
from dehaze.twoscale import grey, working_copy  # noqa: E402
from dehaze.video import (  # noqa: E402
    HazeStream,
    VideoOptions,
    check_crf,
    check_encoder,
    output_extension,
    per_frame,
    probe_video,
    restore_video,
    sniff_video,
)

MODEL = Path(__file__).resolve().parents[1] / "models" / "dehaze-default.onnx"


@pytest.fixture(scope="module")
def dehazer():
    return Dehazer(MODEL, threads=1)


def scene(seed: int, h: int = 120, w: int = 240, airlight=(0.85, 0.86, 0.9), beta: float = 1.4) -> np.ndarray:
    """A smooth random still under haze of constant density (depth growing upwards), float32."""
    rng = np.random.default_rng(seed)
    clear = cv2.resize(
        rng.random((h // 8, w // 8, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
    )
    clear = np.clip(clear * 0.8 + 0.1, 0, 1)
    t = np.exp(-beta * np.linspace(1.2, 0.2, h, dtype=np.float32))[:, None, None]
    return clear * t + np.asarray(airlight, np.float32) * (1 - t)


def pan(still: np.ndarray, n: int, size=(64, 48), noise: float = 2.0, seed: int = 0) -> list[np.ndarray]:
    """``n`` uint8 frames: a window of ``size`` (W, H) panning across ``still``, with sensor noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    H, W = still.shape[:2]
    frames = []
    for k in range(n):
        x0 = (W - 2 * w) * k / max(n - 1, 1)
        m = np.float32([[2, 0, x0], [0, H / h, 0]])  # a 2x-wide window, panning left to right
        f = cv2.warpAffine(
            still, m, (w, h), flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT
        )
        frames.append(np.clip(f * 255 + rng.normal(0.5, noise, f.shape), 0, 255).astype(np.uint8))
    return frames


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def flicker(series) -> float:
    return float(np.abs(np.diff(np.asarray(series, np.float64))).mean())


def mean_t(haze, frame, side) -> float:
    small = working_copy(frame, side)
    return float(np.clip(haze.a * grey(small) + haze.b, haze.t_min, 1).mean())


# -- recognition -----------------------------------------------------------------------------------


def test_videos_are_recognised_by_content_not_name(tmp_path):
    frames = pan(scene(0), 3)
    assert sniff_video(make_clip(tmp_path / "a.mp4", frames)) == "MP4"
    assert sniff_video(make_clip(tmp_path / "a.mkv", frames)) == "Matroska"
    assert sniff_video(make_clip(tmp_path / "a.webm", frames, codec="libvpx-vp9")) == "WebM"
    assert sniff_video(make_clip(tmp_path / "a.avi", frames, codec="mpeg4")) == "AVI"
    assert sniff_video(make_clip(tmp_path / "a.ts", frames)) == "MPEG-TS"
    (tmp_path / "clip.bin").write_bytes((tmp_path / "a.mp4").read_bytes())
    assert sniff_video(tmp_path / "clip.bin") == "MP4" and output_extension(tmp_path / "clip.bin") == ".mp4"
    buf = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (4, 4)).save(buf, "PNG")
    assert sniff_video(buf.getvalue()) is None
    assert sniff_video(b"\x00\x00\x00\x18ftypheic" + bytes(16)) is None  # a HEIF photo
    assert sniff_video(b"\x00\x00\x00\x18ftypM4A " + bytes(16)) is None  # audio only
    assert sniff_video(b"just some text, not a clip") is None


# -- the transcoder --------------------------------------------------------------------------------


def test_restore_keeps_frames_rate_size_rotation_and_copies_the_audio(tmp_path, dehazer):
    src = make_clip(tmp_path / "clip.mp4", pan(scene(1), 15), fps=15, audio=True, rotation=90)
    out = restore_video(src, tmp_path / "out" / "clip.mp4", dehazer.stream().process)
    before = probe_video(src)
    assert (out.width, out.height, out.frames, out.fps, out.rotation) == (64, 48, 15, 15.0, 90)
    assert out.pix_fmt == before.pix_fmt == "yuv420p" and out.codec == "h264"
    assert abs(out.duration - before.duration) < 1e-6
    assert out.audio == "aac" and audio_packets(tmp_path / "out" / "clip.mp4") == audio_packets(src)
    assert len(decode(tmp_path / "out" / "clip.mp4")) == 15
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.mp4"]  # no temporary file left


def test_pixel_format_and_container_are_kept(tmp_path, dehazer):
    frames = pan(scene(2), 8)
    src = make_clip(tmp_path / "deep.mkv", frames, pix_fmt="yuv420p10le")
    out = restore_video(src, tmp_path / "o" / "deep.mkv", dehazer.stream().process)
    assert (out.pix_fmt, out.container, out.frames or len(decode(tmp_path / "o" / "deep.mkv"))) == (
        "yuv420p10le",
        "matroska,webm",
        8,
    )
    src = make_clip(tmp_path / "c.webm", frames, codec="libvpx-vp9", pix_fmt="yuv444p")
    out = restore_video(src, tmp_path / "o" / "c.webm", dehazer.stream().process)
    assert (out.codec, out.pix_fmt) == ("vp9", "yuv444p")  # WebM: VP9 by default
    out = restore_video(src, tmp_path / "o" / "c.mkv", dehazer.stream().process, VideoOptions("libx265", 28))
    assert out.codec == "hevc" and len(decode(tmp_path / "o" / "c.mkv")) == 8
    odd = pan(scene(2), 4, size=(65, 49))  # RGB in a lossless codec, odd sides: 4:2:0 cannot hold it
    out = restore_video(
        make_clip(tmp_path / "odd.mkv", odd, codec="ffv1", pix_fmt="bgr0"),
        tmp_path / "o" / "odd.mkv",
        dehazer.stream().process,
    )
    assert (out.width, out.height, out.pix_fmt) == (65, 49, "yuv444p")
    src = make_clip(tmp_path / "d.ts", frames, fps=25, audio=True)  # MPEG-TS: the count from the duration
    out = restore_video(src, tmp_path / "o" / "d.ts", dehazer.stream().process)
    assert (out.frames, out.fps, out.audio) == (8, 25.0, "aac") and len(decode(tmp_path / "o" / "d.ts")) == 8
    with pytest.raises(ConfigError, match="avi container cannot hold libx265"):
        restore_video(src, tmp_path / "o" / "d.avi", dehazer.stream().process, VideoOptions("libx265"))


def test_strength_zero_gives_the_clip_back(tmp_path, dehazer):
    frames = pan(scene(3), 6, noise=0)
    src = make_clip(tmp_path / "a.mkv", frames, pix_fmt="yuv444p")
    restore_video(src, tmp_path / "o.mkv", dehazer.stream(strength=0).process, VideoOptions(crf=0))
    assert np.abs(np.stack(decode(tmp_path / "o.mkv")).astype(int) - np.stack(decode(src))).max() <= 3


@pytest.mark.parametrize("damage", ["truncated", "zeroed", "not_a_video"])
def test_a_corrupt_or_truncated_clip_is_one_error_and_no_output(tmp_path, dehazer, damage):
    data = make_clip(tmp_path / "good.mkv", pan(scene(4), 15)).read_bytes()
    bad = tmp_path / "bad.mkv"
    if damage == "truncated":
        bad.write_bytes(data[: int(len(data) * 0.8)])
    elif damage == "zeroed":
        bad.write_bytes(data[: len(data) // 2] + bytes(2000) + data[len(data) // 2 + 2000 :])
    else:
        bad.write_bytes(b"\x1a\x45\xdf\xa3" + b"garbage" * 100)
    out = tmp_path / "out"
    with pytest.raises(InputError, match="bad.mkv: .*(corrupt|truncated)") as err:
        restore_video(bad, out / "bad.mkv", dehazer.stream().process)
    assert "\n" not in str(err.value)
    assert not out.exists() or list(out.iterdir()) == []


def test_a_truncated_mp4_is_refused(tmp_path, dehazer):
    data = make_clip(tmp_path / "good.mp4", pan(scene(5), 10)).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.mp4: not a readable video"):
        restore_video(tmp_path / "cut.mp4", tmp_path / "o" / "cut.mp4", dehazer.stream().process)
    assert not (tmp_path / "o" / "cut.mp4").exists()


def test_unsupported_codecs_are_named(tmp_path, dehazer):
    data = make_clip(tmp_path / "a.mkv", pan(scene(6), 3)).read_bytes()
    assert data.count(b"V_MPEG4/ISO/AVC") == 1
    (tmp_path / "odd.mkv").write_bytes(data.replace(b"V_MPEG4/ISO/AVC", b"V_QUUX/ISO/ZZZZ"))
    with pytest.raises(UnsupportedFormatError, match="unsupported video codec V_QUUX/ISO/ZZZZ"):
        restore_video(tmp_path / "odd.mkv", tmp_path / "o.mkv", dehazer.stream().process)
    with pytest.raises(ConfigError, match="unsupported video codec 'nope'"):
        check_encoder("nope")
    with pytest.raises(ConfigError, match="aac.* audio codec"):
        check_encoder("aac")
    with pytest.raises(ConfigError, match="0-51"):
        check_crf(60)
    with pytest.raises(ConfigError, match="cannot hold libx264"):
        restore_video(
            tmp_path / "a.mkv", tmp_path / "o.webm", per_frame(lambda x: x), VideoOptions("libx264")
        )


# -- the stream ------------------------------------------------------------------------------------


def test_stream_keeps_the_frame_type_and_checks_its_settings(dehazer):
    stream = dehazer.stream()
    frame = pan(scene(7), 1)[0]
    for f in (frame, frame.astype(np.uint16) * 257, frame.astype(np.float32) / 255):
        out = stream.process(f)
        assert out.shape == f.shape and out.dtype == f.dtype
    with pytest.raises(ConfigError, match="network_every"):
        HazeStream(dehazer, network_every=0)
    with pytest.raises(ConfigError, match="strength"):
        HazeStream(dehazer, strength=2)


def test_stream_flickers_less_than_per_frame_on_a_constant_haze_pan(tmp_path, dehazer):
    # a pan under haze of constant density, as a camera delivers it (H.264, key frames every 5)
    src = make_clip(tmp_path / "pan.mp4", pan(scene(8, airlight=(0.8, 0.82, 0.86)), 20), gop=5)
    frames = decode(src)
    side = int(dehazer.two_scale["working_size"])
    stream = dehazer.stream()
    s_b, s_t, p_b, p_t = [], [], [], []
    for f in frames:
        s_b.append(stream.process(f).mean())
        s_t.append(mean_t(stream.haze, f, side))
        haze = dehazer.estimate(f)
        p_b.append(dehazer.apply(f, haze).mean())
        p_t.append(mean_t(haze, f, side))
    assert stream.cuts == []
    assert flicker(s_t) < 0.5 * flicker(p_t)  # measured 0.06-0.31 on four seeds
    assert flicker(s_b) < 0.7 * flicker(p_b)  # measured 0.19-0.42


def test_a_scene_cut_resets_the_airlight_at_once(dehazer):
    n = 10
    first = pan(scene(9, airlight=(1.0, 1.0, 1.0), beta=3.0), n)  # bright dense haze: the model's A ~0.93
    second = pan(scene(10, airlight=(0.4, 0.4, 0.5), beta=0.5), n, seed=1)  # ~0.85
    target = np.median([dehazer.estimate(f).airlight for f in second], axis=0)
    stream, blind = dehazer.stream(), dehazer.stream(cut_threshold=2.0)  # blind: never sees a cut
    gaps, blind_gaps = [], []
    for k, f in enumerate(first + second):
        stream.process(f)
        blind.process(f)
        if k == n:
            assert np.allclose(stream.airlight, dehazer.estimate(f).airlight, atol=1e-5)  # its own, at once
        gaps.append(np.abs(stream.airlight - target).max())
        blind_gaps.append(np.abs(blind.airlight - target).max())
    assert stream.cuts == [n] and blind.cuts == []
    assert gaps[n - 1] > 0.05  # the scenes' airlights differ
    assert max(gaps[n:]) < 0.015  # followed from the first frame of the new scene
    assert min(blind_gaps[n : n + 5]) > 0.025  # the moving average alone lags behind


def test_per_frame_wraps_float_methods_for_integer_frames():
    f = np.full((4, 4, 3), 65535, np.uint16)
    assert per_frame(lambda x: x * 0.5)(f)[0, 0, 0] == 32768
