"""Tests of training/reproduce_ssd.py, the SNGAN vs SSD-SNGAN reproduction driver."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _driver():
    spec = importlib.util.spec_from_file_location("reproduce_ssd", ROOT / "training" / "reproduce_ssd.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def no_inception(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("DEHAZE_INCEPTION", raising=False)


def test_driver_end_to_end_and_reuse(tiny_images, tmp_path, no_inception, capsys):
    drv = _driver()
    out = tmp_path / "res"
    argv = ["--budget", "2", "--data", str(tiny_images), "--seeds", "2", "--models", "sngan,ssd-sngan",
            "--width", "8", "--batch", "4", "--n-dis", "1", "--samples", "8", "--out", str(out),
            "--set", "eval.real=8", "--set", "eval.bn_batches=1", "--set", "eval.kid_subsets=2",
            "--set", "net.nz=16", "--set", "eval.grid=4"]
    assert drv.main(argv) == 0
    md = (out / "results.md").read_text()
    assert "| sngan | " in md and "| ssd-sngan | " in md and "FID/KID: not computed" in md
    assert md.count(" ± ") >= 4  # D_hf and D_all, mean ± std over 2 seeds, for 2 models
    assert "python training/reproduce_ssd.py --budget 2" in md
    res = json.loads((out / "results.json").read_text())
    assert len(res["summary"]["ssd-sngan"]["spec_hf"]) == 2
    for name in ("power_spectrum.png", "spectrum_difference.png", "samples_sngan.png", "samples_ssd-sngan.png"):
        assert (out / name).stat().st_size > 100
    capsys.readouterr()
    assert drv.main(argv) == 0  # finished runs are reused, not retrained
    assert capsys.readouterr().err.count("finished earlier, reused") == 4


def test_driver_rejects_bad_models_before_training(tiny_images, tmp_path, capsys):
    drv = _driver()
    assert drv.main(["--budget", "2", "--data", str(tiny_images), "--models", "sngan,bigan",
                     "--out", str(tmp_path / "r")]) == 2
    assert "unknown model(s) bigan" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert drv.main(["--budget", "2", "--data", str(tiny_images), "--set", "loss.lam=3",
                     "--out", str(tmp_path / "r")]) == 2
    assert "loss.lam must be in [0, 1]" in capsys.readouterr().err
