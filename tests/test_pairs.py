"""Pair finding (dehaze.pairs): RESIDE, same-name and _hazy/_GT layouts, unmatched-file errors, sizes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dehaze.errors import InputError
from dehaze.pairs import clear_candidates, find_pairs, fit_clear, list_images

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def _make(root: Path, names: list[str]) -> Path:
    """Small images at ``root / name`` (pairs are found by file name; the content only has to be an image)."""
    for n in names:
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / n), np.full((12, 16, 3), 128, np.uint8))
    return root


def _rel(pairs, root: Path) -> list[tuple[str, str]]:
    return [(str(h.relative_to(root)), str(c.relative_to(root))) for h, c in pairs]


# ----------------------------------------------------------------------------- layouts


def test_reside_sots_indoor(tmp_path):
    _make(
        tmp_path,
        ["hazy/1400_1.png", "hazy/1400_10.png", "hazy/1401_2.png", "clear/1400.png", "clear/1401.png"],
    )
    assert _rel(find_pairs(tmp_path), tmp_path) == [
        ("hazy/1400_1.png", "clear/1400.png"),
        ("hazy/1400_10.png", "clear/1400.png"),
        ("hazy/1401_2.png", "clear/1401.png"),
    ]


def test_reside_sots_outdoor_names_with_a_and_beta(tmp_path):
    _make(tmp_path, ["hazy/0051_0.8_0.2.jpg", "hazy/0051_0.95_0.12.jpg", "hazy/0052_1_0.08.jpg"])
    _make(tmp_path, ["clear/0051.png", "clear/0052.png"])
    assert _rel(find_pairs(tmp_path), tmp_path) == [
        ("hazy/0051_0.8_0.2.jpg", "clear/0051.png"),
        ("hazy/0051_0.95_0.12.jpg", "clear/0051.png"),
        ("hazy/0052_1_0.08.jpg", "clear/0052.png"),
    ]


@pytest.mark.parametrize("clear_dir", ["GT", "gt", "clear", "Clear"])
def test_reside_its_names_and_gt_folder_variants(tmp_path, clear_dir):
    _make(tmp_path, ["hazy/1_1_0.90179.png", "hazy/1_2_0.8.png", "hazy/12_1_0.7.png"])
    _make(tmp_path, [f"{clear_dir}/1.png", f"{clear_dir}/12.png"])
    assert _rel(find_pairs(tmp_path), tmp_path) == [
        ("hazy/12_1_0.7.png", f"{clear_dir}/12.png"),
        ("hazy/1_1_0.90179.png", f"{clear_dir}/1.png"),
        ("hazy/1_2_0.8.png", f"{clear_dir}/1.png"),
    ]


def test_ohaze_tags_in_one_folder(tmp_path):
    _make(tmp_path, ["01_outdoor_hazy.jpg", "01_outdoor_GT.jpg", "02_outdoor_hazy.jpg", "02_outdoor_GT.jpg"])
    assert _rel(find_pairs(tmp_path), tmp_path) == [
        ("01_outdoor_hazy.jpg", "01_outdoor_GT.jpg"),
        ("02_outdoor_hazy.jpg", "02_outdoor_GT.jpg"),
    ]


def test_ihaze_tags_in_hazy_and_gt_folders(tmp_path):
    _make(
        tmp_path,
        ["hazy/01_indoor_hazy.jpg", "hazy/02_indoor_hazy.jpg", "GT/01_indoor_GT.jpg", "GT/02_indoor_GT.jpg"],
    )
    assert _rel(find_pairs(tmp_path), tmp_path) == [
        ("hazy/01_indoor_hazy.jpg", "GT/01_indoor_GT.jpg"),
        ("hazy/02_indoor_hazy.jpg", "GT/02_indoor_GT.jpg"),
    ]


def test_nh_haze_and_dense_haze(tmp_path):
    _make(tmp_path, ["01_hazy.png", "01_GT.png", "10_hazy.png", "10_GT.png", "2_hazy.png", "2_gt.png"])
    assert _rel(find_pairs(tmp_path), tmp_path) == [
        ("01_hazy.png", "01_GT.png"),
        ("10_hazy.png", "10_GT.png"),
        ("2_hazy.png", "2_gt.png"),
    ]


def test_same_name_pairs_with_different_extensions(tmp_path):
    _make(tmp_path, ["hazy/a.png", "hazy/b_c.jpg", "clean/a.jpg", "clean/b_c.png"])
    assert _rel(find_pairs(tmp_path), tmp_path) == [
        ("hazy/a.png", "clean/a.jpg"),
        ("hazy/b_c.jpg", "clean/b_c.png"),
    ]


def test_clear_candidates_order():
    assert clear_candidates("1_1_0.90179") == ["1_1_0.90179", "1_1", "1"]
    assert clear_candidates("01_hazy") == ["01_hazy", "01"]


# ----------------------------------------------------------------------------- errors


def test_unmatched_hazy_named_in_error(tmp_path):
    _make(tmp_path, ["hazy/1400_1.png", "hazy/9999_1.png", "clear/1400.png"])
    with pytest.raises(InputError, match=r"1 hazy image\(s\) have no clear image: hazy/9999_1\.png"):
        find_pairs(tmp_path)


def test_many_unmatched_show_first_few_and_count(tmp_path):
    _make(tmp_path, [f"hazy/{i:04d}_1.png" for i in range(8)] + ["clear/0000.png"])
    with pytest.raises(InputError) as exc:
        find_pairs(tmp_path)
    msg = str(exc.value)
    assert "7 hazy image(s)" in msg and "hazy/0001_1.png" in msg and "and 2 more" in msg
    assert "hazy/0007_1.png" not in msg


def test_unused_clear_named_in_error(tmp_path):
    _make(tmp_path, ["hazy/1_1.png", "clear/1.png", "clear/2.png"])
    with pytest.raises(InputError, match=r"1 clear image\(s\) have no hazy image: clear/2\.png"):
        find_pairs(tmp_path)


def test_single_folder_with_untagged_file(tmp_path):
    _make(tmp_path, ["01_hazy.png", "01_GT.png", "notes.png"])
    with pytest.raises(InputError, match="cannot tell hazy from clear for 1 image.*notes.png"):
        find_pairs(tmp_path)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        find_pairs(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images and no hazy/ folder"):
        find_pairs(tmp_path / "empty")
    (tmp_path / "a" / "hazy").mkdir(parents=True)
    (tmp_path / "a" / "clear").mkdir()
    with pytest.raises(InputError, match="hazy: no images"):
        find_pairs(tmp_path / "a")
    _make(tmp_path / "b", ["hazy/1_1.png"])
    with pytest.raises(InputError, match="no clear/ or GT/ folder"):
        find_pairs(tmp_path / "b")
    _make(tmp_path, ["file.png"])
    with pytest.raises(InputError, match="not a folder"):
        find_pairs(tmp_path / "file.png")


def test_ambiguous_clear_names(tmp_path):
    _make(tmp_path, ["hazy/1_1.png", "clear/1.png", "clear/1.jpg"])
    with pytest.raises(InputError, match="share the name '1'"):
        find_pairs(tmp_path)


def test_list_images_by_extension(tmp_path):
    _make(tmp_path, ["a.png", "b.JPG", "sub/c.webp", ".hidden.png", ".cache/d.png"])
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "e.gif").write_bytes(b"GIF89a")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == [
        "a.png",
        "b.JPG",
        "sub/c.webp",
    ]
    assert [p.name for p in list_images(tmp_path, recursive=False)] == ["a.png", "b.JPG"]
    with pytest.raises(InputError, match="no such folder"):
        list_images(tmp_path / "nope")


@pytest.mark.parametrize("subset,count", [("indoor", 50), ("outdoor", 51)])
def test_sots_dev_pairs_all(subset, count):
    root = SHARED / "sots-dev" / subset
    if not root.is_dir():
        pytest.skip(f"shared data not present: {root}")
    pairs = find_pairs(root)
    assert len(pairs) == count == len(list_images(root / "hazy"))
    for h, c in pairs:
        assert c.stem == h.stem.split("_")[0]


def test_fit_clear_crops_a_slightly_larger_clear_image_and_rejects_others():
    hazy, clear = np.zeros((460, 620, 3)), np.arange(480 * 640 * 3, dtype=np.float64).reshape(480, 640, 3)
    assert fit_clear(hazy, hazy, Path("h.png"), Path("c.png")) is hazy
    np.testing.assert_array_equal(fit_clear(hazy, clear, Path("h.png"), Path("c.png")), clear[10:470, 10:630])
    for shape in ((450, 620, 3), (480, 700, 3), (461, 620, 3)):  # smaller, much larger, odd difference
        with pytest.raises(InputError, match="differ in size"):
            fit_clear(hazy, np.zeros(shape), Path("h.png"), Path("c.png"))
