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


def test_missing_inception_file_stops_before_any_training(tiny_images, tmp_path, no_inception, capsys):
    drv = _driver()
    missing = tmp_path / "weights" / "pt_inception.pth"
    assert drv.main(["--budget", "2", "--data", str(tiny_images), "--width", "8", "--inception", str(missing),
                     "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: Inception weights not found") and str(missing) in err
    assert not (tmp_path / "r").exists()


@pytest.fixture
def cifar_features(tiny_images, tmp_path_factory):
    """A CIFAR feature classifier trained by training/train_cifar_features.py on the tiny two-class folder."""
    spec = importlib.util.spec_from_file_location("tcf", ROOT / "training" / "train_cifar_features.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    data = tmp_path_factory.mktemp("cifar")
    (data / "train").symlink_to(tiny_images)
    (data / "test").symlink_to(tiny_images)
    out = data / "features.pt"
    assert mod.main(["--data", str(data), "--out", str(out), "--epochs", "1", "--batch", "4"]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["test_images"] == 16
    return out


def _tiny_argv(data, out, models: str, seeds: int) -> list[str]:
    return ["--budget", "2", "--data", str(data), "--seeds", str(seeds), "--models", models, "--width", "8",
            "--batch", "4", "--n-dis", "1", "--samples", "8", "--out", str(out), "--set", "eval.real=8",
            "--set", "eval.bn_batches=1", "--set", "eval.kid_subsets=2", "--set", "net.nz=16",
            "--set", "eval.grid=4", "--set", "loss.c_loss=hinge"]


def test_variants_kid_on_cifar_features_rescoring_and_paired_table(tiny_images, tmp_path, no_inception,
                                                                   cifar_features, capsys):
    from dehaze.train.checkpoint import load_checkpoint

    drv = _driver()
    out = tmp_path / "res"
    argv = _tiny_argv(tiny_images, out, "sngan,ssd-sngan,ssd-sngan:weighted", 2)
    assert drv.main(argv) == 0  # trained without the classifier: no KID_cifar
    assert "KID_cifar" not in (out / "results.md").read_text()
    cfg = load_checkpoint(out / "runs" / "ssd-sngan-weighted-s1" / "last.pt")["config"]
    assert cfg["loss"]["combine"] == "weighted" and cfg["model"] == "ssd-sngan"
    capsys.readouterr()
    assert drv.main(argv + ["--kid-features", str(cifar_features)]) == 0  # rescored from the checkpoints
    assert capsys.readouterr().err.count("KID_cifar added from its checkpoint") == 6
    md = (out / "results.md").read_text()
    assert "KID_cifar×10³" in md and "not** comparable" in md
    assert "| ssd-sngan − sngan | D_hf ↓ |" in md and "| ssd-sngan:weighted − ssd-sngan | KID_cifar×10³ ↓ |" in md
    assert "| ssd-sngan:weighted − sngan | D_hf ↓ |" in md
    assert (out / "samples_ssd-sngan-weighted.png").is_file()
    assert "C's accuracy on its own real/fake training batches" in md and "| ssd-sngan:weighted | " in md
    assert "| AUC | sign accuracy |" in md and md.count("| ssd-sngan:weighted | 1 | ") == 2  # per-run and C tables
    c = json.loads((out / "results.json").read_text())["runs"]["ssd-sngan-s0"]
    assert 0 <= c["c_auc"] <= 1 and c["w_up_p5"] <= c["w_up_p95"]

    # rescoring gives exactly what the trainer itself computes with the classifier
    rescored = json.loads(sorted((out / "runs" / "ssd-sngan-s0" / "eval").glob("0*"))[-1]
                          .joinpath("metrics.json").read_text())
    direct = tmp_path / "direct"
    assert drv.main(_tiny_argv(tiny_images, direct, "ssd-sngan", 1) + ["--kid-features", str(cifar_features)]) == 0
    trained = json.loads(sorted((direct / "runs" / "ssd-sngan-s0" / "eval").glob("0*"))[-1]
                         .joinpath("metrics.json").read_text())
    assert trained["kid_cifar"] == pytest.approx(rescored["kid_cifar"], rel=1e-6)
