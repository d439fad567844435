"""Video: dehaze clips without flicker; decode and encode with PyAV, keep what the clip had.

Restored frame by frame, a clip flickers: the network's estimates of the atmospheric light A and
of the transmission t jump from frame to frame and the brightness pumps. :class:`HazeStream`
carries the haze from frame to frame instead: A and the network's raw t at the working size are
exponential moving averages (time constants in frames), the network runs on every
``network_every``-th frame only, the guided filter is fitted on every frame's own working copy
(so t's edges follow the picture), A follows quick changes of the whole frame's brightness, and a
scene cut (the colour histograms of consecutive working
copies differ by more than ``cut_threshold``) resets the state, so the new scene gets its own haze
at once. The full-size half is :func:`dehaze.twoscale.apply_haze`, as for photos.

:func:`restore_video` reads a clip, dehazes every frame and writes it atomically, keeping the
frame rate and timestamps (so the duration), the size, the rotation (display matrix) and the pixel
format where the encoder has it; the audio stream is copied unchanged. :func:`sniff_video`
recognises video containers by their first bytes without PyAV (the service uses it to refuse
videos). PyAV is imported only when a clip is decoded or encoded (``pip install 'ssd-dehaze[video]'``).

Example:
    >>> sniff_video(b"\\x00\\x00\\x00\\x18ftypmp42" + bytes(20))
    'MP4'
    >>> from dehaze.inference import Dehazer  # doctest: +SKIP
    >>> stream = Dehazer("models/dehaze-default.onnx").stream()  # doctest: +SKIP
    >>> clear = [stream.process(frame) for frame in frames]  # HxWx3 RGB, in order  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dehaze.errors import ConfigError, DehazeError, InputError, UnsupportedFormatError
from dehaze.io import atomic_file, head_bytes, to_float
from dehaze.twoscale import check_strength, working_copy

__all__ = [
    "AIRLIGHT_FRAMES",
    "CUT_THRESHOLD",
    "DEFAULT_CRF",
    "DEFAULT_PRESET",
    "LEVEL_GAIN",
    "NETWORK_EVERY",
    "T_FRAMES",
    "VIDEO_EXTENSIONS",
    "HazeStream",
    "VideoInfo",
    "VideoOptions",
    "check_crf",
    "check_encoder",
    "histogram_distance",
    "output_extension",
    "per_frame",
    "probe_video",
    "restore_video",
    "sniff_video",
]

# the measured defaults (benchmarks/bench_video.py)
AIRLIGHT_FRAMES = 30.0  # time constant of A's moving average, in frames (about 1 s at 30 fps)
T_FRAMES = 4.0  # time constant of the raw t's moving average at the working size, in frames
NETWORK_EVERY = (
    8  # the network runs on every N-th frame (and on the first after a cut): 720p at >= 10 fps on 2 cores
)
LEVEL_GAIN = (
    0.03  # A follows the frame's brightness over its recent average by at most ±3% (pumping, flicker)
)
CUT_THRESHOLD = 0.35  # histogram distance (0: same colours, 1: disjoint) above which a frame starts a scene
HIST_BINS = 16  # per colour channel, for the scene-cut test
DEFAULT_CRF = 20  # constant-quality setting (x264/x265: 18 looks lossless, 23 is FFmpeg's default)
DEFAULT_PRESET = "fast"  # x264/x265 speed preset
CRF_CODECS = {"libx264": 51, "libx265": 51, "libvpx-vp9": 63, "libsvtav1": 63, "libaom-av1": 63}  # max CRF
PRESET_CODECS = ("libx264", "libx265")

# container -> extension of the output (a clip is written in its own container when it is one of
# these; others, e.g. FLV or MPEG-PS, are written as Matroska, which holds any audio codec)
_MUXERS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
    ".ts": "mpegts",
    ".m2ts": "mpegts",
    ".mts": "mpegts",
}
_CONTAINER_EXT = {
    "MP4": ".mp4",
    "MOV": ".mov",
    "3GP": ".mp4",
    "Matroska": ".mkv",
    "WebM": ".webm",
    "AVI": ".avi",
    "MPEG-TS": ".ts",
}
VIDEO_EXTENSIONS = (*_MUXERS, ".3gp", ".flv", ".wmv", ".asf", ".mpg", ".mpeg", ".ogv", ".vob")
_IMAGE_BRANDS = (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis", b"heim", b"heis", b"hevc")
_AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ")
_QT_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def sniff_video(data_or_path: bytes | bytearray | memoryview | str | Path) -> str | None:
    """The video container of some content by its first bytes (never the name), else None.

    Recognises MP4 / MOV / 3GP (``ftyp`` box, not the HEIF/AVIF image or M4A audio brands; old
    QuickTime atoms), Matroska and WebM (EBML), AVI (RIFF), MPEG-TS and M2TS (sync bytes every
    188/192 bytes), MPEG-PS, FLV, ASF/WMV and Ogg. Needs no PyAV: the service uses it.

    Example:
        >>> sniff_video(b"RIFF\\x00\\x00\\x00\\x00AVI LIST"), sniff_video(b"\\x89PNG\\r\\n\\x1a\\n") is None
        ('AVI', True)
    """
    head = head_bytes(data_or_path, 400)
    if head is None:
        return None
    box = head[4:8]
    if box == b"ftyp":
        brand = head[8:12]
        if brand in _IMAGE_BRANDS or brand in _AUDIO_BRANDS:
            return None
        return "MOV" if brand == b"qt  " else "3GP" if brand.startswith(b"3g") else "MP4"
    if box in _QT_ATOMS and head[:4] != b"RIFF":
        return "MOV"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "WebM" if b"webm" in head[:64] else "Matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return "MPEG-TS"
    if len(head) > 388 and head[4] == head[196] == head[388] == 0x47:
        return "MPEG-TS"  # M2TS: 4-byte timestamps before each packet
    if head.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")):
        return "MPEG-PS"
    if head.startswith(b"FLV\x01"):
        return "FLV"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "ASF"
    if head.startswith(b"OggS"):
        return "Ogg"
    return None


def output_extension(path: str | Path) -> str:
    """The extension a clip's restored copy gets: its own when PyAV writes that container, else the
    content's (``.mp4`` for an MP4 named ``.bin``), else ``.mkv``.

    Example:
        >>> output_extension("a/clip.MOV"), output_extension("b/clip.flv")
        ('.MOV', '.mkv')
    """
    path = Path(path)
    if path.suffix.lower() in _MUXERS:
        return path.suffix
    return _CONTAINER_EXT.get(sniff_video(path) or "", ".mkv")


def _av():
    """PyAV, or one line that says how to install it."""
    try:
        import av
    except ModuleNotFoundError as exc:
        if exc.name != "av":
            raise
        raise DehazeError(
            "videos need PyAV, which is not installed here: pip install 'ssd-dehaze[video]'"
        ) from None
    return av


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Half the L1 distance of two normalised colour histograms (from :meth:`HazeStream.histogram`):
    0 for the same colours, 1 for disjoint ones. Camera motion within a scene stays low; a cut is high.

    Example:
        >>> h = np.full((3, 4), 0.25, np.float32)
        >>> histogram_distance(h, h), histogram_distance(h, np.eye(3, 4, dtype=np.float32))
        (0.0, 0.75)
    """
    return float(np.abs(a - b).sum() / (2 * a.shape[0]))


class HazeStream:
    """Dehaze the frames of one video in order, with the haze carried from frame to frame.

    Per frame: the working copy's colour histograms are compared with the previous frame's (a
    scene cut resets the state); every ``network_every``-th frame the network gives a new target
    (its raw t at the working size, and A); the smoothed t and A move towards their targets by
    ``1 - exp(-1 / time constant)`` of the gap on every frame (no step when the network runs); A
    is scaled by the frame's brightness over its recent average (within ±:data:`LEVEL_GAIN`), so a
    quick small change of exposure (or an encoder's pumping) changes the output by the same factor
    instead of by 1/t times as much;
    the guided filter is fitted on the frame's own working copy (t's edges follow the picture as
    the camera moves) and the haze is removed at full size (:func:`dehaze.twoscale.apply_haze`).

    Args:
        dehazer: a two-scale :class:`~dehaze.inference.Dehazer` (an ``asm``-head model).
        strength: in [0, 1.5], as for photos; None -> the dehazer's.
        network_every: the network runs on every N-th frame (always on the first one and after a
            cut). 1: every frame.
        airlight_frames: time constant of A's moving average, in frames (0: no smoothing).
        t_frames: time constant of the moving average of the raw t at the working size, in frames.
        cut_threshold: :func:`histogram_distance` between consecutive frames above which the state
            is reset (a scene cut); above 1: never.

    Attributes:
        frames: frames processed so far.
        cuts: indices of the frames that started a new scene (not the first frame).
        airlight: the (3,) A used for the last frame (smoothed, scaled by the frame's brightness).
        haze: the :class:`~dehaze.twoscale.Haze` applied to the last frame.

    Example:
        >>> stream = HazeStream(Dehazer("models/dehaze-default.onnx"), strength=0.8)  # doctest: +SKIP
        >>> for frame in frames:  # HxWx3 RGB, uint8, uint16 or float32 in [0, 1]  # doctest: +SKIP
        ...     sink(stream.process(frame))  # same shape and dtype
    """

    def __init__(
        self,
        dehazer,
        *,
        strength: float | None = None,
        network_every: int = NETWORK_EVERY,
        airlight_frames: float = AIRLIGHT_FRAMES,
        t_frames: float = T_FRAMES,
        cut_threshold: float = CUT_THRESHOLD,
    ):
        if getattr(dehazer, "two_scale", None) is None:
            raise ConfigError(
                f"{getattr(dehazer, 'name', dehazer)!r} is not a two-scale model: a stream needs one"
            )
        if isinstance(network_every, bool) or not isinstance(network_every, int) or network_every < 1:
            raise ConfigError(
                f"network_every must be a whole number of frames, 1 or more, got {network_every!r}"
            )
        if not (airlight_frames >= 0 and t_frames >= 0):
            raise ConfigError("the time constants airlight_frames and t_frames must be 0 or more")
        self.dehazer = dehazer
        try:
            self.strength = dehazer.strength if strength is None else check_strength(strength)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.network_every = network_every
        self.cut_threshold = float(cut_threshold)
        self._w_air = np.float32(1.0 - math.exp(-1.0 / airlight_frames) if airlight_frames > 0 else 1.0)
        self._w_t = np.float32(1.0 - math.exp(-1.0 / t_frames) if t_frames > 0 else 1.0)
        self.working_size = int(dehazer.two_scale["working_size"])
        self.frames = 0
        self.cuts: list[int] = []
        self.haze = None
        self.reset()

    def reset(self) -> None:
        """Forget the haze: the next frame is estimated on its own, as at a scene cut."""
        self._t = self._t_target = None
        self.airlight = self._air = self._air_target = None
        self._since = 0  # frames since the network last ran
        self._hist = self._level = None

    @staticmethod
    def histogram(small: np.ndarray) -> np.ndarray:
        """(3, HIST_BINS) per-channel colour histograms of a working copy, each summing to 1."""
        hist = np.stack(
            [cv2.calcHist([small], [c], None, [HIST_BINS], [0.0, 1.0 + 1e-6]).reshape(-1) for c in range(3)]
        )
        return hist / np.float32(max(small.shape[0] * small.shape[1], 1))

    def process(self, frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The next frame, dehazed: same shape and dtype (``out`` may be ``frame`` itself)."""
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(
                f"expected an HxWx3 RGB frame, got {getattr(frame, 'shape', type(frame).__name__)}"
            )
        if frame.dtype not in (np.uint8, np.uint16):
            frame = to_float(frame)
        small = working_copy(frame, self.working_size)
        hist = self.histogram(small)
        if self._t is not None and (
            self._t.shape != small.shape[:2] or histogram_distance(hist, self._hist) > self.cut_threshold
        ):
            if self._t.shape == small.shape[:2]:
                self.cuts.append(self.frames)
            self.reset()
        self._hist = hist
        level = np.float32(small.mean())
        if self._t is None or self._since + 1 >= self.network_every:
            t, airlight = self.dehazer.raw_haze(small)
            self._t_target, self._air_target = t.astype(np.float32), np.asarray(airlight, np.float32)
            self._since = 0
        else:
            self._since += 1
        if self._t is None:
            self._t, self._air, self._level = self._t_target.copy(), self._air_target.copy(), level
        else:
            self._t += self._w_t * (self._t_target - self._t)
            self._air = self._air + self._w_air * (self._air_target - self._air)
            self._level += self._w_t * (level - self._level)
        # a quick small change of the whole frame's level (exposure, the encoder's pumping) scales A with
        # it, so the output changes by the same factor instead of by 1/t times the change
        gain = np.clip(level / max(self._level, 1e-3), 1 - LEVEL_GAIN, 1 + LEVEL_GAIN)
        self.airlight = np.clip(self._air * gain, 0.0, 1.0).astype(np.float32)
        self.haze = self.dehazer.fit(small, self._t, self.airlight, frame.shape[:2])
        self.frames += 1
        return self.dehazer.apply(frame, self.haze, self.strength, out=out)


def per_frame(fn: Callable[[np.ndarray], np.ndarray]):
    """A frame function for methods without temporal state (``dcp``, ``hazy``, image-head models):
    ``fn`` on each frame as float32 in [0, 1], the result in the frame's dtype.

    Example:
        >>> per_frame(lambda x: x * 0.5)(np.full((2, 2, 3), 200, np.uint8))[0, 0].tolist()
        [100, 100, 100]
    """

    def process(frame: np.ndarray) -> np.ndarray:
        if frame.dtype not in (np.uint8, np.uint16):
            return np.clip(fn(to_float(frame)), 0.0, 1.0)
        scale = np.iinfo(frame.dtype).max
        y = np.clip(np.asarray(fn(to_float(frame)), np.float32), 0.0, 1.0) * np.float32(scale) + np.float32(
            0.5
        )
        return y.astype(frame.dtype)

    return process


@dataclass
class VideoInfo:
    """What a clip holds (:func:`probe_video`), or what was written (:func:`restore_video`)."""

    container: str
    codec: str
    width: int
    height: int
    fps: float
    frames: int  # from the header (the count, or the duration × the rate); 0 when it does not say
    duration: float  # seconds; 0 when unknown
    pix_fmt: str
    rotation: int
    audio: str | None  # codec of the first audio stream, or None


@dataclass
class VideoOptions:
    """How restored clips are encoded: ``codec`` None -> H.264 (``libx264``), VP9 for WebM; ``crf``
    for the codecs that take one (x264, x265, VP9, AV1); ``preset`` for x264 and x265."""

    codec: str | None = None
    crf: int = DEFAULT_CRF
    preset: str = DEFAULT_PRESET


def check_encoder(name: str) -> str:
    """``name`` if this FFmpeg build has it as a video encoder, else a ConfigError that names it.

    Example:
        >>> check_encoder("libx264")  # doctest: +SKIP
        'libx264'
    """
    av = _av()
    try:
        codec = av.codec.Codec(name, "w")
    except Exception:  # UnknownCodecError and FFmpeg's lookups differ between PyAV versions
        raise ConfigError(
            f"unsupported video codec {name!r}: this FFmpeg build has no such encoder "
            "(e.g. libx264, libx265, libvpx-vp9, libsvtav1, mpeg4, ffv1)"
        ) from None
    if codec.type != "video":
        raise ConfigError(f"{name!r} is an {codec.type} codec, not a video one")
    return name


def check_crf(crf: int, codec: str | None = None) -> int:
    """``crf`` if ``codec`` takes it (None: the default H.264), else a ConfigError with the range.

    Example:
        >>> check_crf(20), check_crf(60, "libvpx-vp9")
        (20, 60)
    """
    top = CRF_CODECS.get(codec or "libx264", 63)
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= top:
        raise ConfigError(f"the CRF must be 0-{top} for {codec or 'libx264'}, got {crf!r}")
    return crf


def _open_input(src: Path):
    av = _av()
    try:
        container = av.open(str(src), "r")
    except av.error.FFmpegError as exc:
        raise InputError(f"{src}: not a readable video (corrupt or truncated): {_reason(exc)}") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{src}: has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        container.close()
        raise UnsupportedFormatError(
            f"{src}: unsupported video codec {_codec_tag(src) or '(unknown)'}: this "
            "FFmpeg build cannot decode it"
        )
    return container, stream


def _codec_tag(src: Path) -> str | None:
    """The video codec as the container names it (Matroska CodecID, MP4/MOV sample entry, AVI
    fourcc), for the message when FFmpeg has no decoder and so no name for it."""
    with open(src, "rb") as f:
        head = f.read(1 << 20)
    for pattern in (
        rb"\x86[\x81-\xbf](V_[\x20-\x7e]+)",
        rb"stsd.{12}([\x20-\x7e]{4})",
        rb"strh.{4}vids([\x20-\x7e]{4})",
    ):
        m = re.search(pattern, head, re.DOTALL)
        if m:
            tag = m.group(1).decode("ascii").strip()
            return tag[: head[m.start(1) - 1] - 0x80] if pattern.startswith(rb"\x86") else tag
    return None


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip().splitlines()[0] if text else exc.__class__.__name__


def _stream_seconds(stream) -> float:
    """The video stream's duration from the header (Matroska keeps it in a ``DURATION`` tag); 0: unknown."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", (stream.metadata or {}).get("DURATION", ""))
    return int(tag[1]) * 3600 + int(tag[2]) * 60 + float(tag[3]) if tag else 0.0


def _expected_frames(stream) -> tuple[int, int]:
    """Frames the header promises and how many fewer still count as whole: the frame count (1%), else
    the stream's duration × its rate (2%); (0, 0) when the header does not say."""
    if stream.frames:
        return int(stream.frames), max(1, int(stream.frames) // 100)
    seconds, rate = _stream_seconds(stream), float(stream.average_rate or 0)
    n = int(round(seconds * rate))
    return n, max(2, n // 50)


def probe_video(src: str | Path) -> VideoInfo:
    """What the clip at ``src`` holds, from its header and its first frame (the rotation).

    Raises:
        InputError: not a readable video, or none in it.
    """
    src = Path(src)
    container, stream = _open_input(src)
    try:
        cc = stream.codec_context
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        duration = _stream_seconds(stream) or (container.duration / 1e6 if container.duration else 0.0)
        first = next((f for f, _ in _decoded(container, stream, None, src)), None)
        return VideoInfo(
            container.format.name,
            cc.name,
            cc.width,
            cc.height,
            float(stream.average_rate or 0),
            _expected_frames(stream)[0],
            duration,
            cc.format.name if cc.format else "",
            int(getattr(first, "rotation", 0) or 0),
            audio,
        )
    finally:
        container.close()


def _frame_array(frame) -> np.ndarray:
    """A decoded frame as HxWx3 RGB: uint16 for more than 8 bits per sample, else uint8."""
    deep = max(c.bits for c in frame.format.components) > 8
    return frame.to_ndarray(format="rgb48le" if deep else "rgb24")


def _out_pix_fmt(codec, in_fmt: str, deep: bool, odd: bool = False) -> str:
    """The input's pixel format when the encoder takes it, else the nearest common one it has (without
    chroma subsampling when a side is odd, which 4:2:0 cannot hold)."""
    have = [f.name for f in codec.video_formats or []]
    if not have or in_fmt in have:
        return in_fmt
    wanted = ("yuv444p", "gbrp", "yuv420p") if odd else ("yuv420p", "yuv444p", "gbrp")
    for fmt in tuple(f"{f}10le" for f in wanted if deep) + wanted:
        if fmt in have:
            return fmt
    return have[0]


class _Writer:
    """The output container, opened at the first frame (its size, format and rotation are known then)."""

    def __init__(self, file, muxer: str, codec_name: str, options: VideoOptions, in_stream, in_audio):
        av = _av()
        self.container = av.open(file, "w", format=muxer)
        self.muxer, self.codec_name, self.options, self.in_stream = muxer, codec_name, options, in_stream
        self.audio = self.video = None
        if in_audio is not None:
            with self._refused(f"{in_audio.codec_context.name} audio (copied unchanged)"):
                self.audio = self.container.add_stream_from_template(in_audio)

    @contextlib.contextmanager
    def _refused(self, what: str):
        """A stream the container does not take (PyAV's check, or the header's) as one ConfigError."""
        av = _av()
        try:
            yield
        except (ValueError, av.error.FFmpegError):
            raise ConfigError(f"the {self.muxer} container cannot hold {what}") from None

    def open_video(self, frame) -> None:
        av = _av()
        codec = av.codec.Codec(self.codec_name, "w")
        opts = {}
        if self.codec_name in CRF_CODECS:
            opts["crf"] = str(self.options.crf)
            if self.codec_name == "libvpx-vp9":
                opts["b"] = "0"  # constant quality
        if self.codec_name in PRESET_CODECS:
            opts["preset"] = self.options.preset
        if self.codec_name == "libx265":
            opts["x265-params"] = "log-level=error"  # x265 writes its own log to stderr otherwise
        rate = self.in_stream.average_rate or self.in_stream.guessed_rate or 25
        with self._refused(f"{self.codec_name} video; choose another --codec"):
            s = self.container.add_stream(self.codec_name, rate=rate, options=opts)
        s.width, s.height = frame.width, frame.height
        deep = max(c.bits for c in frame.format.components) > 8
        s.pix_fmt = _out_pix_fmt(
            codec, frame.format.name, deep, odd=frame.width % 2 == 1 or frame.height % 2 == 1
        )
        s.time_base = self.in_stream.time_base
        s.codec_context.time_base = self.in_stream.time_base
        if self.in_stream.sample_aspect_ratio:
            s.sample_aspect_ratio = self.in_stream.sample_aspect_ratio
        for key in ("color_range", "colorspace", "color_primaries", "color_trc"):
            value = getattr(self.in_stream.codec_context, key, None)
            if value is not None:
                with contextlib.suppress(AttributeError, TypeError, ValueError):  # not settable in this PyAV
                    setattr(s.codec_context, key, value)
        if frame.rotation:
            s.set_display_rotation(frame.rotation)
        self.video = s
        with self._refused(
            f"these streams ({self.codec_name} video"
            f"{', ' + self.audio.codec_context.name + ' audio' if self.audio else ''})"
        ):
            self.container.start_encoding()  # the header, where some containers refuse a codec

    def encode(self, array: np.ndarray | None, like=None) -> None:
        av = _av()
        if array is None:
            packets = self.video.encode(None)
        else:
            out = av.VideoFrame.from_ndarray(array, format="rgb48le" if array.dtype == np.uint16 else "rgb24")
            out.pts, out.time_base = like.pts, like.time_base
            packets = self.video.encode(out)
        self.container.mux(packets)

    def mux_audio(self, packet) -> None:
        if packet.dts is None:  # the demuxer's flush packet
            return
        packet.stream = self.audio
        self.container.mux(packet)


def _decoded(container, stream, audio, src: Path) -> Iterator[tuple[object, object]]:
    """``(video frame, None)`` or ``(None, audio packet)`` in file order; FFmpeg's errors as InputError."""
    av = _av()
    streams = [stream] + ([audio] if audio is not None else [])
    try:
        for packet in container.demux(streams):
            if packet.stream.index == stream.index:
                for frame in packet.decode():
                    yield frame, None
            else:
                yield None, packet
    except av.error.FFmpegError as exc:
        raise InputError(f"{src}: corrupt video data: {_reason(exc)}") from None


def restore_video(
    src: str | Path,
    dst: str | Path,
    process: Callable[[np.ndarray], np.ndarray],
    options: VideoOptions | None = None,
    progress: Callable[[int], None] | None = None,
    max_pixels: int | None = None,
) -> VideoInfo:
    """Dehaze the clip ``src`` frame by frame with ``process`` into ``dst``, atomically.

    Args:
        src: a video file PyAV can decode.
        dst: the output; its extension chooses the container (``.mp4``, ``.mov``, ``.mkv``,
            ``.webm``, ``.avi``, ``.ts``, ...; see :func:`output_extension`).
        process: HxWx3 RGB frame -> the same (e.g. :meth:`HazeStream.process`, :func:`per_frame`).
        options: codec and quality; None -> :class:`VideoOptions` defaults.
        progress: called with the number of frames done after each frame (e.g. a tqdm bar's update).
        max_pixels: refuse frames with more pixels.

    Returns:
        What was written (:class:`VideoInfo`). Nothing is left at ``dst`` unless every frame the
        header promises was decoded and written: a corrupt or truncated clip raises InputError.

    Example:
        >>> restore_video("clip.mp4", "out/clip.mp4", Dehazer().stream().process)  # doctest: +SKIP
    """
    src, dst = Path(src), Path(dst)
    options = options or VideoOptions()
    muxer = _MUXERS.get(dst.suffix.lower())
    if muxer is None:
        raise ConfigError(
            f"{dst}: cannot write a video with the extension {dst.suffix!r}; use {', '.join(_MUXERS)}"
        )
    codec_name = check_encoder(options.codec or ("libvpx-vp9" if muxer == "webm" else "libx264"))
    check_crf(options.crf, codec_name)
    container, stream = _open_input(src)
    stream.thread_type = "AUTO"
    audio = container.streams.audio[0] if container.streams.audio else None
    expected, slack = _expected_frames(stream)
    try:
        with atomic_file(dst) as f:
            writer = _Writer(f, muxer, codec_name, options, stream, audio)
            try:
                done = _transcode(container, stream, audio, writer, process, progress, max_pixels, src)
            finally:
                writer.container.close()
            if done < expected - slack:
                raise InputError(
                    f"{src}: corrupt or truncated video: only {done} of the {expected} frames "
                    "its header promises could be decoded"
                )
    finally:
        container.close()
    return probe_video(dst)


def _transcode(container, stream, audio, writer: _Writer, process, progress, max_pixels, src: Path) -> int:
    """Decode, ``process`` and encode every frame, copy the audio packets; the number of frames."""
    pending = []  # audio packets before the first frame (the video stream must be added first)
    done = 0
    for frame, packet in _decoded(container, stream, audio, src):
        if packet is not None:
            if writer.video is None:
                pending.append(packet)
            else:
                writer.mux_audio(packet)
            continue
        if writer.video is None:
            if max_pixels and frame.width * frame.height > max_pixels:
                raise InputError(
                    f"{src}: frames of {frame.width}x{frame.height} exceed the limit of {max_pixels:,} pixels"
                )
            writer.open_video(frame)
            for p in pending:
                writer.mux_audio(p)
            pending = []
        writer.encode(process(_frame_array(frame)), like=frame)
        done += 1
        if progress is not None:
            progress(done)
    if writer.video is None:
        raise InputError(f"{src}: no frame could be decoded (corrupt or truncated video)")
    writer.encode(None)
    return done
