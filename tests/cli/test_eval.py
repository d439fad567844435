import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dehaze.cli import main
from dehaze.evaluation import score
from dehaze.nets import UNetGenerator

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / ".." / "shared"


def clear_image(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.random((h, w, 3)) * 0.8
    img[::5, ::5] = 0  # dark pixels everywhere: the dark channel prior holds
    return img


def hazy_of(clear: np.ndarray, t: float, A: float = 0.9) -> np.ndarray:
    return clear * t + A * (1 - t)


def u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)


@pytest.fixture
def reside(tmp_path):
    """A RESIDE-layout set: indoor-style 1400_k.png and outdoor-style 0051_0.8_0.2.jpg names."""
    root = tmp_path / "set"
    (root / "hazy").mkdir(parents=True)
    (root / "clear").mkdir()
    for sid, hazies in {"1400": ["1400_1.png", "1400_2.png"], "0051": ["0051_0.8_0.2.jpg"]}.items():
        clear = clear_image(int(sid))
        Image.fromarray(u8(clear)).save(root / "clear" / f"{sid}.png")
        for k, name in enumerate(hazies):
            Image.fromarray(u8(hazy_of(clear, 0.35 + 0.2 * k))).save(root / "hazy" / name, quality=98)
    return root


def test_eval_json_baselines_side_by_side(reside, capsys):
    assert main(["eval", str(reside), "--method", "dcp,hazy", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 3 and set(report["methods"]) == {"dcp", "hazy"}
    dcp, hazy = report["methods"]["dcp"], report["methods"]["hazy"]
    pairs = sorted((Path(r["hazy"]).name, Path(r["clear"]).name) for r in hazy["images"])
    assert pairs == [("0051_0.8_0.2.jpg", "0051.png"), ("1400_1.png", "1400.png"), ("1400_2.png", "1400.png")]
    assert dcp["mean"]["psnr"] > hazy["mean"]["psnr"] + 2  # the baseline really dehazes
    assert dcp["mean"]["ssim"] > hazy["mean"]["ssim"]
    for m in (dcp, hazy):
        assert len(m["images"]) == 3 and m["seconds_per_megapixel"] >= 0
        assert m["mean"]["psnr"] == pytest.approx(np.mean([r["psnr"] for r in m["images"]]))
        assert {"psnr", "ssim", "spectral"} <= set(m["mean"])
    # "hazy" is the input's own score, computed independently here
    row = next(r for r in hazy["images"] if r["hazy"].endswith("1400_1.png"))
    x = np.asarray(Image.open(row["hazy"]), np.float64) / 255
    y = np.asarray(Image.open(row["clear"]), np.float64) / 255
    assert row["psnr"] == pytest.approx(10 * np.log10(1 / np.mean((x - y) ** 2)), abs=1e-3)
    assert score(y.astype(np.float32), y.astype(np.float32))["spectral"] == 0.0 < row["spectral"]


def test_eval_table_with_model(reside, tmp_path, capsys):
    torch.manual_seed(0)
    G = UNetGenerator(width=4, depth=3).eval()
    ckpt = tmp_path / "tiny.pt"
    torch.save({"G": G.state_dict(), "G_config": G.config, "config": {}, "step": 0, "metrics": {}}, ckpt)
    assert main(["eval", str(reside), "--method", "model,hazy", "--model", str(ckpt), "--per-image"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "3 pairs" in lines[0] and "PSNR" in lines[1]
    assert sum(line.startswith("mean") for line in lines) == 2
    assert sum("1400_2.png" in line for line in lines) == 2  # one row per method


def test_eval_tagged_pairs_and_errors(tmp_path, capsys):
    root = tmp_path / "ohaze"
    root.mkdir()
    for i in (1, 2):
        clear = clear_image(i)
        Image.fromarray(u8(clear)).save(root / f"0{i}_outdoor_GT.png")
        Image.fromarray(u8(hazy_of(clear, 0.4))).save(root / f"0{i}_outdoor_hazy.png")
    assert main(["eval", str(root), "--method", "hazy", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pairs"] == 2
    (root / "03_outdoor_hazy.png").write_bytes((root / "01_outdoor_hazy.png").read_bytes())  # no GT
    assert main(["eval", str(root), "--method", "hazy"]) == 2
    assert "03_outdoor_hazy" in capsys.readouterr().err
    assert main(["eval", str(root), "--method", "dcp,nonsense"]) == 2
    assert "unknown method" in capsys.readouterr().err


def test_dcp_on_sots_dev_indoor(capsys):
    root = SHARED / "data" / "sots-dev" / "indoor"
    if not root.is_dir():
        pytest.skip(f"shared data not found at {root}")
    assert main(["eval", str(root), "--method", "dcp,hazy", "--json", "--limit", "4"]) == 0
    methods = json.loads(capsys.readouterr().out)["methods"]
    assert methods["dcp"]["mean"]["psnr"] > methods["hazy"]["mean"]["psnr"] + 5
    assert methods["dcp"]["mean"]["ssim"] > methods["hazy"]["mean"]["ssim"]


def _serving_install():
    """tests/test_serving_install.py, for its import-refusing subprocess (``run_without``) and package list."""
    spec = importlib.util.spec_from_file_location("_serving_install", REPO / "tests" / "test_serving_install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_eval_runs_without_the_training_stack(reside, capsys):
    """``dehaze eval`` in an interpreter where torch, kornia, albumentations, yaml, ... cannot be imported."""
    serving = _serving_install()
    model = serving.MODEL if serving.MODEL.is_file() else None
    methods = "model,dcp,hazy" if model else "dcp,hazy"
    extra = ["--model", str(model), "--device", "cpu", "--threads", "1"] if model else []
    r = serving.run_without(
        f"""
        import contextlib, io
        from dehaze.cli import main

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = main(["eval", {str(reside)!r}, "--method", {methods!r}, "--json", *{extra!r}])
        assert rc == 0, rc
        loaded = sorted(m for m in sys.modules if m.partition(".")[0] in REFUSED)
        assert not loaded, loaded
        print(out.getvalue())
        """,
        refused=(*serving.TRAIN_ONLY, "yaml"),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout)
    assert report["pairs"] == 3 and list(report["methods"]) == methods.split(",")
    dcp, hazy = report["methods"]["dcp"]["mean"], report["methods"]["hazy"]["mean"]
    assert 5 < hazy["psnr"] < dcp["psnr"] - 2 < 60 and 0 < hazy["ssim"] < dcp["ssim"] <= 1
    for m in report["methods"].values():
        assert np.isfinite(list(m["mean"].values())).all() and m["mean"]["spectral"] >= 0
    # the same numbers as in this (torch-importing) process
    assert main(["eval", str(reside), "--method", "dcp,hazy", "--json"]) == 0
    here = json.loads(capsys.readouterr().out)["methods"]
    for name in ("dcp", "hazy"):
        assert report["methods"][name]["mean"] == pytest.approx(here[name]["mean"], abs=1e-9)


def test_eval_tile_keeps_the_tiling_rule_at_parse_time(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["eval", str(tmp_path), "--method", "dcp", "--tile", "10"])
    assert exc.value.code == 2  # refused before any pair is looked for
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == "dehaze eval: error: argument --tile: must be 0 (no tiling) or at least 64, got 10"
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "0 (no tiling) or at least 64 (512)" in text
    assert "ASM head" in text and "two scales and ignore the tile" in text
