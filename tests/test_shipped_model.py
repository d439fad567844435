"""The model that ships in models/: intact, documented, two-scale, and it really dehazes (measured here)."""

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from dehaze.inference import Dehazer, default_model_path

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "dehaze-default.onnx"
SOTS = REPO.parent / "shared" / "data" / "sots-dev"


def test_default_model_path_is_the_shipped_file(monkeypatch):
    monkeypatch.delenv("DEHAZE_MODEL", raising=False)
    assert default_model_path().resolve() == MODEL.resolve()


def test_model_matches_its_card_and_runs_in_two_scales():
    card = json.loads(MODEL.with_suffix(".json").read_text())
    assert hashlib.sha256(MODEL.read_bytes()).hexdigest() == card["sha256"]
    assert MODEL.stat().st_size < 40e6 and card["parameters"] <= 8_000_000
    dh = Dehazer(MODEL, threads=2)
    assert dh.two_scale == card["two_scale"] and dh.accepts_integer
    for name in ("outdoor", "indoor"):  # the card says how its scores were measured
        assert card["evaluation"][name]["command"].startswith("dehaze eval ")
    rgb = np.random.default_rng(0).random((96, 80, 3), dtype=np.float32)
    a = dh.estimate_airlight(rgb)
    assert a.shape == (3,) and np.all((0.5 <= a) & (a <= 1.0))  # the ASM head's A lies in [0.5, 1]


@pytest.mark.skipif(not SOTS.is_dir(), reason=f"{SOTS} is absent (shared data not mounted)")
@pytest.mark.parametrize("subset", ["outdoor", "indoor"])
def test_dehazes_sots_pairs_the_same_at_1x_and_3x(subset):
    from dehaze.evaluation import evaluate

    dh = Dehazer(MODEL, threads=2)
    report = evaluate(SOTS / subset, {"model": dh, "hazy": lambda x: x}, limit=3, progress=False)
    model, hazy = (report["methods"][m]["mean"] for m in ("model", "hazy"))
    assert model["psnr"] > hazy["psnr"] + 1.0 and model["ssim"] > hazy["ssim"]

    from dehaze.evaluation import score
    from dehaze.io import read_photo
    from dehaze.pairs import find_pairs, fit_clear

    gaps = []
    for hazy_path, clear_path in find_pairs(SOTS / subset)[:3]:  # the same scene with 9x the pixels
        hazy_img = read_photo(hazy_path).rgb
        clear = fit_clear(hazy_img, read_photo(clear_path).rgb, hazy_path, clear_path)
        up = lambda x: np.clip(cv2.resize(x, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC), 0, 1)  # noqa: E731
        gaps.append(score(dh(up(hazy_img)), up(clear))["psnr"] - score(dh(hazy_img), clear)["psnr"])
    assert abs(float(np.mean(gaps))) < 0.5, gaps
