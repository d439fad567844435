import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dehaze.errors import DehazeError
from dehaze.nets import UNetGenerator

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("airlight_report", ROOT / "training" / "airlight_report.py")
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)


def write_sots_outdoor(root: Path, airlights: list[float]) -> Path:
    """RESIDE outdoor layout: hazy/ID_A_beta.png synthesised with that A, clear/ID.png."""
    rng = np.random.default_rng(0)
    (root / "hazy").mkdir(parents=True)
    (root / "clear").mkdir()
    for i, a in enumerate(airlights):
        clear = cv2.resize(rng.random((6, 8, 3)), (64, 48), interpolation=cv2.INTER_CUBIC).clip(0, 1)
        hazy = clear * 0.6 + a * 0.4
        cv2.imwrite(str(root / "clear" / f"{i:04d}.png"), (clear * 255).round().astype(np.uint8))
        cv2.imwrite(str(root / "hazy" / f"{i:04d}_{a}_0.2.png"), (hazy * 255).round().astype(np.uint8))
    return root


@pytest.fixture(scope="module")
def asm_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    G = UNetGenerator(width=4, depth=3, head="asm", upsample="bilinear").eval()
    path = tmp_path_factory.mktemp("m") / "asm.pt"
    state = G.state_dict()
    torch.save({"G": state, "G_ema": None, "G_config": G.config, "config": {}, "step": 0, "metrics": {}}, path)
    return path


def test_true_airlight_from_reside_names():
    assert report.true_airlight("0001_0.8_0.2") == 0.8
    assert report.true_airlight("1400_1") is None and report.true_airlight("0001_x_0.2") is None


def test_report_compares_the_estimate_with_the_true_airlight(tmp_path, asm_ckpt, capsys):
    root = write_sots_outdoor(tmp_path / "sots", [0.8, 0.95])
    rep = report.airlight_report(str(asm_ckpt), str(root), tile=0)
    assert rep["mean"]["pairs"] == 2
    err = [np.mean(r["A_est"]) - r["A"] for r in rep["images"]]
    assert rep["mean"]["A_bias"] == pytest.approx(np.mean(err))
    # an untrained A (sigmoid around 0.75) is off the true A, so forcing the true one changes the output
    assert all(r["psnr"] != pytest.approx(r["psnr_true_A"], abs=1e-3) for r in rep["images"])
    assert report.main([str(asm_ckpt), str(root), "--tile", "0"]) == 0
    assert "with the true A" in capsys.readouterr().out


def test_pairs_without_airlight_in_the_name_get_it_fitted(tmp_path, asm_ckpt, capsys):
    root = write_sots_outdoor(tmp_path / "sots", [0.8, 0.95])
    (root / "hazy" / "0000_0.8_0.2.png").rename(root / "hazy" / "0000_3.png")  # SOTS indoor style
    rep = report.airlight_report(str(asm_ckpt), str(root), tile=0)
    rows = {r["hazy"]: r for r in rep["images"]}
    assert rows["0000_3.png"]["A_source"] == "fit" and rows["0001_0.95_0.2.png"]["A_source"] == "name"
    assert rows["0000_3.png"]["A"] == pytest.approx(0.8, abs=0.01)  # 8-bit rounding of the pair


def test_fit_airlight_recovers_a_known_airlight():
    rng = np.random.default_rng(1)
    J = rng.random((40, 50, 3))
    t = rng.uniform(0.2, 0.9, (40, 50, 1))
    for a in (0.7, 0.92, 1.0):
        assert report.fit_airlight(J * t + a * (1 - t), J) == pytest.approx(a, abs=0.002)


def test_report_refuses_a_folder_without_pairs(tmp_path, asm_ckpt, capsys):
    (tmp_path / "empty" / "hazy").mkdir(parents=True)
    (tmp_path / "empty" / "clear").mkdir()
    with pytest.raises(DehazeError):
        report.airlight_report(str(asm_ckpt), str(tmp_path / "empty"))
    assert report.main([str(asm_ckpt), str(tmp_path / "empty")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
