"""``dehaze synth``: RESIDE-layout output that find_pairs pairs, one-line errors, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import dehaze.cli
from dehaze.data import find_pairs


@pytest.fixture
def dehaze_main():
    """The real dispatcher (it imports only the sub-command being run)."""
    return dehaze.cli.main


def _photo(path: Path, h: int = 40, w: int = 56, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = cv2.GaussianBlur(
        np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 1.5
    )
    assert cv2.imwrite(str(path), img)


@pytest.fixture
def clean(tmp_path) -> Path:
    _photo(tmp_path / "clean" / "beach.png", seed=1)
    _photo(tmp_path / "clean" / "city_03.jpg", 48, 32, seed=2)
    _photo(tmp_path / "clean" / "more" / "forest.png", seed=3)
    return tmp_path / "clean"


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_writes_reside_pairs_that_find_pairs_matches(dehaze_main, clean, tmp_path, capsys):
    out = tmp_path / "out"
    assert dehaze_main(["synth", str(clean), "-o", str(out), "--per-image", "2", "--preset", "outdoor"]) == 0
    assert "wrote 6 hazy images for 3 photos" in capsys.readouterr().out
    assert _tree(out) == [
        "clear/beach.png", "clear/city_03.png", "clear/forest.png",
        "hazy/beach_1.png", "hazy/beach_2.png", "hazy/city_03_1.png", "hazy/city_03_2.png",
        "hazy/forest_1.png", "hazy/forest_2.png", "meta.jsonl",
    ]  # fmt: skip
    pairs = [(h.relative_to(out).as_posix(), c.relative_to(out).as_posix()) for h, c in find_pairs(out)]
    meta = [json.loads(line) for line in (out / "meta.jsonl").read_text().splitlines()]
    assert sorted((m["hazy"], m["clear"]) for m in meta) == pairs
    for m in meta:
        assert len(m["A"]) == 3 and 0.7 <= min(m["A"]) and max(m["A"]) <= 1.0
        assert 0 < m["beta"] <= 0.3 and m["prior"] and 0 < m["mean_t"] <= 1
        hazy, clear = cv2.imread(str(out / m["hazy"])), cv2.imread(str(out / m["clear"]))
        assert hazy.shape == clear.shape and not np.array_equal(hazy, clear)
    # the clear image is the source photo, losslessly re-encoded
    np.testing.assert_array_equal(
        cv2.imread(str(out / "clear/beach.png")), cv2.imread(str(clean / "beach.png"))
    )


def test_same_seed_same_output(dehaze_main, clean, tmp_path):
    for name, seed in [("a", "3"), ("b", "3"), ("c", "4")]:
        assert dehaze_main(["synth", str(clean), "-o", str(tmp_path / name), "--seed", seed]) == 0
    a, b, c = ((tmp_path / n / "hazy" / "beach_1.png").read_bytes() for n in "abc")
    assert a == b and a != c


def test_output_inside_clean_folder_is_refused(dehaze_main, clean, capsys):
    assert dehaze_main(["synth", str(clean), "-o", str(clean / "pairs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "must not be inside the clean folder" in err and err.count("\n") == 1
    assert not (clean / "pairs").exists()
    assert dehaze_main(["synth", str(clean), "-o", str(clean)]) == 2


@pytest.mark.parametrize("case", ["missing", "empty"])
def test_missing_or_empty_clean_folder(dehaze_main, tmp_path, capsys, case):
    src = tmp_path / "src"
    if case == "empty":
        src.mkdir()
        (src / "readme.txt").write_text("no photos here")
    assert dehaze_main(["synth", str(src), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("no such folder" in err if case == "missing" else "no images" in err)
    assert not (tmp_path / "out").exists()


def test_non_empty_output_needs_overwrite(dehaze_main, clean, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert dehaze_main(["synth", str(clean), "-o", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert dehaze_main(["synth", str(clean), "-o", str(out), "--overwrite"]) == 0
    assert len(find_pairs(out)) == 3 and (out / "keep.txt").exists()


def test_name_clashes_are_refused(dehaze_main, tmp_path, capsys):
    _photo(tmp_path / "a" / "x.png")
    _photo(tmp_path / "a" / "sub" / "x.jpg")
    assert dehaze_main(["synth", str(tmp_path / "a"), "-o", str(tmp_path / "o1")]) == 2
    assert "same name 'x'" in capsys.readouterr().err
    _photo(tmp_path / "b" / "p.png")
    _photo(tmp_path / "b" / "p_1.png")  # hazy p_1.png of photo p would pair with photo p_1
    assert dehaze_main(["synth", str(tmp_path / "b"), "-o", str(tmp_path / "o2")]) == 2
    assert "would pair with the photo 'p_1'" in capsys.readouterr().err
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_bad_arguments(dehaze_main, clean, tmp_path, capsys):
    assert dehaze_main(["synth", str(clean), "-o", str(tmp_path / "o"), "--per-image", "0"]) == 2
    assert "--per-image must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        dehaze_main(["synth", str(clean), "-o", str(tmp_path / "o"), "--preset", "foggy"])
    assert exc.value.code == 2


def test_unreadable_photo_is_one_error_line(dehaze_main, tmp_path, capsys):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "broken.png").write_bytes(b"not a png at all")
    assert dehaze_main(["synth", str(tmp_path / "src"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "broken.png" in err and err.count("\n") == 1
    assert not list((tmp_path / "out").rglob("*.png"))


def test_a_failed_write_leaves_no_half_written_file(dehaze_main, clean, tmp_path, monkeypatch):
    import dehaze.io

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dehaze.io.os, "fsync", full_disk)  # fails after the bytes, before the rename
    out = tmp_path / "out"
    with pytest.raises(OSError, match="No space left"):
        dehaze_main(["synth", str(clean), "-o", str(out)])
    assert _tree(out) == []  # neither the image being written nor its temporary file


def test_haze_ranges_from_yaml_inline_or_file(dehaze_main, clean, tmp_path, capsys):
    """``--haze`` takes what a training config's data.haze takes: here a sand-coloured airlight."""
    spec = "{preset: outdoor, cast_prob: 1, cast_strength: [1, 1], casts: {sand: 1}, A_tint: 0}"
    assert dehaze_main(["synth", str(clean), "-o", str(tmp_path / "a"), "--haze", spec]) == 0
    meta = [json.loads(x) for x in (tmp_path / "a" / "meta.jsonl").read_text().splitlines()]
    assert {m["cast"] for m in meta} == {"sand"} and all(m["A"][0] > m["A"][1] > m["A"][2] for m in meta)
    (tmp_path / "haze.yaml").write_text("- {preset: dense, weight: 1}\n- {preset: indoor, weight: 0}\n")
    assert dehaze_main(["synth", str(clean), "-o", str(tmp_path / "b"), "--haze", str(tmp_path / "haze.yaml")]) == 0
    meta = [json.loads(x) for x in (tmp_path / "b" / "meta.jsonl").read_text().splitlines()]
    assert all(min(m["A"]) <= 0.95 for m in meta)  # the dense preset's dimmer airlight
    capsys.readouterr()
    for bad, msg in [("{preset: outdoor, cast_prob: 3}", "cast_prob"), ("[unclosed", "not valid YAML"),
                     ("42", "preset name, a mapping")]:
        assert dehaze_main(["synth", str(clean), "-o", str(tmp_path / "c"), "--haze", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and msg in err and err.count("\n") == 1
