import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dehaze.cli import main
from dehaze.cli.evaluate import score
from dehaze.nets import UNetGenerator

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"


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
