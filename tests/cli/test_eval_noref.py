"""``dehaze eval`` on photos without ground truth: FADE, newly clipped pixels, brightness, noise, contact sheet.

No torch at module level: the no-reference scores belong to the base install (one test runs the
command in an interpreter that refuses the training stack).
"""

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from dehaze.cli import main
from dehaze.evaluation import NOREF_METRICS, has_ground_truth, noref_photos

REPO = Path(__file__).resolve().parents[2]


def hazy_photo(seed: int, h: int = 96, w: int = 128, t: float = 0.5) -> np.ndarray:
    """A textured scene (coloured shapes, dark pixels, fine noise) under uniform haze, uint8."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    for _ in range(25):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.rectangle(img, (x0, y0), (x0 + int(rng.integers(6, 40)), y0 + int(rng.integers(6, 40))),
                      (rng.random(3) * 0.8).tolist(), -1)
    img[::7, ::7] = 0
    img = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1) * t + 0.9 * (1 - t)
    return (img * 255 + 0.5).astype(np.uint8)


@pytest.fixture
def photos(tmp_path):
    """Three real-world-like hazy photos, no ground truth: a PNG, a JPEG and a portrait PNG."""
    root = tmp_path / "real"
    root.mkdir()
    Image.fromarray(hazy_photo(0)).save(root / "a.png")
    Image.fromarray(hazy_photo(1, t=0.4)).save(root / "b.jpg", quality=95)
    Image.fromarray(hazy_photo(2, 128, 96)).save(root / "c.png")
    return root


def run_json(args, capsys) -> dict:
    assert main(["eval", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_plain_folder_is_scored_without_reference(photos, capsys):
    assert not has_ground_truth(photos)
    report = run_json([str(photos), "--method", "dcp,hazy"], capsys)
    assert report["mode"] == "no-reference" and report["photos"] == 3 and report["fade_side"] == 1024
    assert list(report["methods"]) == ["dcp", "hazy"] and report["sheet"] is None
    dcp, hazy = report["methods"]["dcp"], report["methods"]["hazy"]
    assert [Path(r["hazy"]).name for r in hazy["images"]] == ["a.png", "b.jpg", "c.png"]
    for m in (dcp, hazy):
        assert set(m["mean"]) == set(m["median"]) == set(NOREF_METRICS)
        assert m["mean"]["fade"] == pytest.approx(np.mean([r["fade"] for r in m["images"]]))
        assert m["median"]["fade"] == pytest.approx(np.median([r["fade"] for r in m["images"]]))
        for row in m["images"]:
            assert np.isfinite([v for v in row.values() if not isinstance(v, str)]).all()
            assert row["fade"] == pytest.approx(row["fade_df"] / (row["fade_dff"] + 1))
    # the input scored against itself: nothing clipped, same brightness, same noise
    assert hazy["mean"]["clipped"] == 0 and hazy["mean"]["brightness_ratio"] == 1
    assert hazy["mean"]["noise_amplification"] == 1 and hazy["seconds_per_megapixel"] >= 0
    # DCP removes haze: less fog, more noise in flat areas, a changed brightness
    for d, h in zip(dcp["images"], hazy["images"]):
        assert d["fade"] < h["fade"] and d["noise_amplification"] > 1 and d["brightness_ratio"] != 1


def test_table_per_image_and_contact_sheet(photos, tmp_path, capsys):
    sheet = tmp_path / "out" / "sheet.png"
    args = ["eval", str(photos), "--method", "dcp,hazy", "--per-image", "--sheet", str(sheet), "--sheet-width", "64"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "3 photos, no reference" in lines[0] and "FADE" in lines[1] and "noise" in lines[1]
    assert sum(line.startswith("mean") for line in lines) == sum(line.startswith("median") for line in lines) == 2
    assert sum(line.startswith("b.jpg") for line in lines) == 2  # one row per method
    assert lines[-1] == f"contact sheet: {sheet}"
    # a row per photo, columns hazy | dcp ("hazy" is the first column already); 64-px thumbnails
    img = np.asarray(Image.open(sheet))
    heights = [96 * 64 // 128, 96 * 64 // 128, 128 * 64 // 96]
    assert img.shape == (sum(h + 16 + 4 for h in heights) + 4, 2 * (64 + 4) + 4, 3)
    assert sorted(p.name for p in sheet.parent.iterdir()) == ["sheet.png"]  # atomic: no temporary left
    assert (img[:4] == 255).all() and img[20:40, 4:68].std() > 5  # white margin, a photo below the label


def test_paired_folder_with_no_reference_scores_the_hazy_images(tmp_path, capsys):
    root = tmp_path / "set"
    (root / "hazy").mkdir(parents=True)
    (root / "clear").mkdir()
    for i in range(2):
        Image.fromarray(hazy_photo(i, t=1.0)).save(root / "clear" / f"{i}.png")
        Image.fromarray(hazy_photo(i)).save(root / "hazy" / f"{i}_1.png")
    assert has_ground_truth(root)
    assert run_json([str(root), "--method", "hazy"], capsys)["pairs"] == 2  # paired by default
    report = run_json([str(root), "--method", "hazy", "--no-reference"], capsys)
    assert report["mode"] == "no-reference"
    assert [Path(r["hazy"]).name for r in report["methods"]["hazy"]["images"]] == ["0_1.png", "1_1.png"]
    # --sheet belongs to no-reference scoring
    assert main(["eval", str(root), "--method", "hazy", "--sheet", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--no-reference" in err and len(err.splitlines()) == 1


def test_hazy_frames_without_gt_are_scored_without_reference(tmp_path, capsys):
    root = tmp_path / "ohaze"
    root.mkdir()
    for i in (1, 2):
        Image.fromarray(hazy_photo(i)).save(root / f"0{i}_outdoor_hazy.jpg")
    assert noref_photos(root) == sorted(root.iterdir())
    report = run_json([str(root), "--method", "hazy", "--limit", "1"], capsys)
    assert report["photos"] == 1 and report["mode"] == "no-reference"
    # with one ground-truth image present the folder is paired, and pairing is strict
    Image.fromarray(hazy_photo(1, t=1.0)).save(root / "01_outdoor_GT.jpg")
    assert main(["eval", str(root), "--method", "hazy"]) == 2
    assert "02_outdoor_hazy" in capsys.readouterr().err


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: None, "no photos to score"),
        (lambda d: (d / "x.jpg").write_bytes(b"not an image at all"), "x.jpg: not an image"),
        (lambda d: (d / "x.jpg").write_bytes(b""), "x.jpg: file is empty"),
        (lambda d: Image.fromarray(hazy_photo(0, 16, 16)).save(d / "tiny.png"), "tiny.png: a 16x16 image is too small"),
        (lambda d: Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(d / "grey.png"), "grey.png: a flat image"),
    ],
    ids=["empty", "not-an-image", "empty-file", "tiny", "flat"],
)
def test_bad_input_is_one_line_error(tmp_path, capsys, make, message):
    root = tmp_path / "in"
    root.mkdir()
    make(root)
    assert main(["eval", str(root), "--method", "hazy"]) == 2
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1]  # after the progress bar
    assert last.startswith("error:") and message in last and "Traceback" not in err, err


def test_missing_folder_and_bad_sheet_width(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nope"), "--method", "hazy"]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["eval", str(tmp_path), "--method", "hazy", "--sheet-width", "3"]) == 2
    assert "--sheet-width" in capsys.readouterr().err


def _serving_install():
    """tests/test_serving_install.py, for its import-refusing subprocess (``run_without``)."""
    spec = importlib.util.spec_from_file_location("_serving_install", REPO / "tests" / "test_serving_install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_noref_eval_runs_without_the_training_stack(photos, tmp_path, capsys):
    """No-reference ``dehaze eval`` (and its sheet) where torch, scipy, yaml, ... cannot be imported."""
    serving = _serving_install()
    model = serving.MODEL if serving.MODEL.is_file() else None
    methods = "model,dcp,hazy" if model else "dcp,hazy"
    extra = ["--model", str(model), "--device", "cpu", "--threads", "1"] if model else []
    sheet = tmp_path / "sheet.png"
    r = serving.run_without(
        f"""
        import contextlib, io
        from dehaze.cli import main

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = main(["eval", {str(photos)!r}, "--method", {methods!r}, "--json", "--sheet", {str(sheet)!r},
                       *{extra!r}])
        assert rc == 0, rc
        loaded = sorted(m for m in sys.modules if m.partition(".")[0] in REFUSED)
        assert not loaded, loaded
        print(out.getvalue())
        """,
        refused=(*serving.TRAIN_ONLY, "yaml"),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout)
    assert report["photos"] == 3 and list(report["methods"]) == methods.split(",") and sheet.is_file()
    # the same numbers in this process
    here = run_json([str(photos), "--method", "dcp,hazy"], capsys)["methods"]
    for name in ("dcp", "hazy"):
        assert report["methods"][name]["median"] == pytest.approx(here[name]["median"], abs=1e-9)
