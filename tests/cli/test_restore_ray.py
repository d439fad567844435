"""``dehaze restore --engine ray``: the same run as the local engine, on a Ray instance bound to 127.0.0.1.

One Ray instance (2 CPUs, no dashboard) serves the whole module; the photos are tiny and the
model is the shipped one on one thread per worker, so both engines compute exactly the same.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from media import save

import dehaze.cli.ray_engine as ray_engine
from dehaze.cli import main
from dehaze.io import read_photo

RNG = np.random.default_rng(1)


def u8(h: int, w: int, channels: int = 3) -> np.ndarray:
    shape = (h, w, channels) if channels > 1 else (h, w)
    return ((RNG.random(shape) * 0.5 + 0.45) * 255).round().astype(np.uint8)





@pytest.fixture(scope="module")
def ray_local():
    """A Ray instance on the loopback address only, for the whole module."""
    ray = pytest.importorskip("ray")
    ray_engine.patient_serve_env()
    ray.init(_node_ip_address="127.0.0.1", num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def folder(tmp_path) -> Path:
    """Photos of several kinds in a tree, one broken file and one that is no image."""
    d = tmp_path / "in"
    save(d / "plain.png", u8(40, 60), "PNG")
    save(d / "really_a_jpeg.png", u8(50, 30), "JPEG")
    save(d / "alpha.png", u8(40, 60, 4), "PNG")
    save(d / "gray.png", u8(40, 60, 1), "PNG")
    cv2.imwrite(str(d / "deep.png"), (RNG.random((20, 30, 3)) * 65535).astype(np.uint16))
    save(d / "trip" / "day1" / "b.jpg", u8(30, 50), "JPEG")
    jpeg = (d / "really_a_jpeg.png").read_bytes()
    (d / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (d / "notes.txt").write_text("not an image\n")
    return d


OUTPUTS = ["alpha.png", "deep.png", "gray.png", "plain.png", "really_a_jpeg.png", "trip/day1/b.jpg"]


def outputs(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def failed_lines(err: str) -> list[str]:
    """The reports and the summary (without its OUT_DIR)."""
    lines = [line for line in err.splitlines() if line.strip().startswith(("failed:", "skipped:", "restored "))]
    return [line.split(" -> ")[0] for line in lines]


def restore(src: Path, out: Path, *extra: str) -> int:
    return main(["restore", str(src), "-o", str(out), "-r", "--threads", "1", *extra])


def test_ray_equals_local_and_rerun_skips(ray_local, folder, tmp_path, capsys):
    assert restore(folder, tmp_path / "local") == 1  # the truncated JPEG
    local = capsys.readouterr().err
    out = tmp_path / "ray"
    assert restore(folder, out, "--engine", "ray") == 1
    err = capsys.readouterr().err
    assert outputs(out) == outputs(tmp_path / "local") == sorted(OUTPUTS)  # mirrored tree, no temp files
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert failed_lines(err) == failed_lines(local)
    assert "restored 6, already done 0, failed 1" in err and "truncated.jpg" in err
    assert read_photo(out / "deep.png", as_float=False).rgb.dtype == np.uint16

    done = {name: (out / name).stat().st_mtime_ns for name in OUTPUTS}
    assert restore(folder, out, "--engine", "ray") == 1
    err = capsys.readouterr().err
    assert "restored 0, already done 6, failed 1" in err
    assert all((out / n).stat().st_mtime_ns == t for n, t in done.items())  # nothing redone


class DyingWorker(ray_engine.PhotoWorker):
    """Kills its own process on its first batch, once per marker file (a worker lost mid-run)."""

    marker = ""

    def __call__(self, batch: dict) -> dict:
        import os

        try:
            with open(self.marker, "x"):
                pass
        except FileExistsError:
            return super().__call__(batch)
        os._exit(1)


def test_a_worker_killed_mid_run_loses_nothing(ray_local, folder, tmp_path, monkeypatch, capsys):
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test file
    monkeypatch.setattr(DyingWorker, "marker", str(tmp_path / "died-once"))
    monkeypatch.setattr(ray_engine, "PhotoWorker", DyingWorker)
    (folder / "truncated.jpg").unlink()
    out = tmp_path / "out"
    assert restore(folder, out, "--engine", "ray", "--method", "dcp", "--workers", "2") == 0
    assert (tmp_path / "died-once").exists()  # a worker did die
    assert "restored 6, already done 0, failed 0" in capsys.readouterr().err
    assert [n for n in outputs(out)] == sorted(OUTPUTS)
    for name in OUTPUTS:
        assert read_photo(out / name).rgb.shape == read_photo(folder / name).rgb.shape


def test_without_ray_one_line_naming_the_extra(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    assert restore(folder, tmp_path / "out", "--engine", "ray", "--method", "dcp") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --engine ray needs ray, which is not installed here: pip install 'ssd-dehaze[cluster]'"]
    assert not (tmp_path / "out").exists()


def test_videos_are_restored_by_the_local_engine(ray_local, tmp_path, capsys):
    av = pytest.importorskip("av", reason="PyAV (the [video] extra) is not installed")
    src = tmp_path / "in"
    save(src / "still.png", u8(40, 60), "PNG")
    with av.open(str(src / "clip.mkv"), "w") as c:
        s = c.add_stream("libx264", rate=12)
        s.height, s.width, s.pix_fmt = 48, 64, "yuv420p"
        for _ in range(6):
            c.mux(s.encode(av.VideoFrame.from_ndarray(u8(48, 64), format="rgb24")))
        c.mux(s.encode(None))
    out = tmp_path / "out"
    assert restore(src, out, "--engine", "ray", "--method", "dcp") == 0
    err = capsys.readouterr().err
    assert "note: 1 video(s) are restored by the local engine (Ray restores photos)" in err
    assert "restored 2, already done 0, failed 0" in err
    assert outputs(out) == ["clip.mkv", "still.png"]


def test_file_urls_work_and_other_urls_are_one_line(ray_local, folder, tmp_path, capsys):
    (folder / "truncated.jpg").unlink()
    out = tmp_path / "out dir"
    src_url, out_url = folder.as_uri(), out.as_uri()  # file:///.../in, file:///.../out%20dir
    assert main(["restore", src_url, "-o", out_url, "-r", "--engine", "ray", "--method", "dcp"]) == 0
    assert outputs(out) == sorted(OUTPUTS)
    capsys.readouterr()
    assert main(["restore", "s3://bucket/photos", "-o", str(out), "--engine", "ray", "--method", "dcp"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: s3://bucket/photos: only local paths and file:// URLs are supported, not s3://"
    )
