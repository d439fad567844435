"""``dehaze restore`` on clips and on folders that mix photos and clips (clips made by the tests)."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

av = pytest.importorskip("av", reason="PyAV (the [video] extra) is not installed")

from media import decode, make_clip  # noqa: E402

import dehaze.video as video  # noqa: E402
from dehaze.cli import main  # noqa: E402

MODEL = Path(__file__).resolve().parents[2] / "models" / "dehaze-default.onnx"


def frames(n: int = 12, w: int = 64, h: int = 48, seed: int = 0) -> list[np.ndarray]:
    """A hazy smooth scene panning left to right, uint8 RGB."""
    rng = np.random.default_rng(seed)
    still = cv2.resize(
        rng.random((8, 16, 3)).astype(np.float32), (2 * w + n, h), interpolation=cv2.INTER_CUBIC
    )
    still = np.clip(still * 0.4 + 0.55, 0, 1)  # hazy: low contrast, bright
    return [(still[:, k : k + 2 * w : 2] * 255 + 0.5).astype(np.uint8) for k in range(n)]


@pytest.fixture
def mixed(tmp_path) -> Path:
    """A folder of photos and clips: with and without audio, one without an extension, two broken."""
    d = tmp_path / "in"
    make_clip(d / "traffic.mp4", frames(), audio=True)
    make_clip(d / "drone.mkv", frames(seed=1))
    make_clip(d / "camera-7", frames(8, seed=2))  # Matroska, no extension: found by content
    Image.fromarray(frames(1, 60, 40)[0]).save(d / "still.png")
    data = (d / "drone.mkv").read_bytes()
    (d / "cut.mkv").write_bytes(data[: int(len(data) * 0.7)])  # truncated
    (d / "junk.mp4").write_bytes(b"not a video at all\n" * 20)  # a video's name, no video inside
    return d


def run(args, capsys) -> tuple[int, str]:
    code = main(["restore", *map(str, args), "--model", str(MODEL), "--threads", "1"])
    return code, capsys.readouterr().err


def test_a_mixed_folder_restores_photos_and_clips(mixed, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run([mixed, "-o", out], capsys)
    assert code == 1  # the two broken clips
    assert "restored 4, already done 0, failed 2" in err
    assert "Traceback" not in err
    failed = [line for line in err.splitlines() if line.startswith("  failed:")]
    assert len(failed) == 2
    assert any(re.search("cut.mkv: .*corrupt or truncated video", line) for line in failed)
    assert any("junk.mp4: not a readable video" in line for line in failed)
    assert sorted(p.name for p in out.iterdir()) == ["camera-7.mkv", "drone.mkv", "still.png", "traffic.mp4"]
    clip = video.probe_video(out / "traffic.mp4")
    assert (clip.width, clip.height, clip.frames, clip.fps, clip.audio) == (64, 48, 12, 12.0, "aac")
    assert len(decode(out / "drone.mkv")) == 12 and len(decode(out / "camera-7.mkv")) == 8
    hazy, clear = np.stack(decode(mixed / "drone.mkv")), np.stack(decode(out / "drone.mkv"))
    assert clear.std() > hazy.std() * 1.2  # the haze was removed: more contrast
    assert "frame/s" in err or "frame" in err  # the clips' progress bars

    code, err = run([mixed, "-o", out], capsys)  # again: the finished files are skipped
    assert code == 1 and "restored 0, already done 4, failed 2" in err


def test_strength_and_codec_options(tmp_path, capsys):
    src = make_clip(tmp_path / "a.mkv", frames())
    code, _ = run(
        [src, "-o", tmp_path / "none", "--strength", "0", "--crf", "0", "--preset", "ultrafast"], capsys
    )
    assert code == 0
    diff = np.abs(np.stack(decode(tmp_path / "none" / "a.mkv")).astype(int) - np.stack(decode(src)))
    assert float(diff.mean()) < 1.5 and int(diff.max()) <= 10  # the clip back, up to RGB <-> YUV 4:2:0
    code, _ = run([src, "-o", tmp_path / "hevc", "--codec", "libx265", "--network-every", "1"], capsys)
    assert code == 0 and video.probe_video(tmp_path / "hevc" / "a.mkv").codec == "hevc"


@pytest.mark.parametrize(
    "option, message",
    [
        (["--codec", "nope"], "unsupported video codec 'nope'"),
        (["--codec", "aac"], "'aac' is an audio codec"),
        (["--crf", "70"], "CRF must be 0-51"),
    ],
)
def test_bad_video_options_are_one_line_and_exit_2(tmp_path, capsys, option, message):
    src = make_clip(tmp_path / "a.mp4", frames(4))
    code, err = run([src, "-o", tmp_path / "out", *option], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "option, message",
    [
        (["--network-every", "0"], "must be 1 or more"),
        (["--crf", "-1"], "must be 0 or more"),
        (["--preset", "warp"], "invalid choice"),
    ],
)
def test_malformed_video_options_are_refused_by_the_parser(tmp_path, capsys, option, message):
    with pytest.raises(SystemExit) as exit_:
        run([tmp_path, "-o", tmp_path / "out", *option], capsys)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_an_interrupted_clip_leaves_no_file_and_is_redone(tmp_path, monkeypatch, capsys):
    src = make_clip(tmp_path / "in" / "a.mp4", frames())
    out = tmp_path / "out"
    real = video.HazeStream.process
    seen = []

    def process_then_die(self, frame, out=None):
        seen.append(1)
        if len(seen) == 5:
            raise KeyboardInterrupt  # Ctrl-C during the 5th frame
        return real(self, frame, out)

    monkeypatch.setattr(video.HazeStream, "process", process_then_die)
    code, err = run([src, "-o", out], capsys)
    assert code == 130 and "interrupted" in err
    assert not out.exists() or list(out.iterdir()) == []  # no half-written clip, no temporary file
    monkeypatch.setattr(video.HazeStream, "process", real)
    code, err = run([src.parent, "-o", out], capsys)
    assert code == 0 and "restored 1, already done 0" in err
    assert len(decode(out / "a.mp4")) == 12
