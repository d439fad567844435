import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dehaze.cli.evaluate import score
from dehaze.errors import ConfigError
from dehaze.nets import UNetGenerator

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("t_refine_report", ROOT / "training" / "t_refine_report.py")
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)


def write_pairs(root: Path, n: int = 2) -> Path:
    rng = np.random.default_rng(0)
    (root / "hazy").mkdir(parents=True)
    (root / "clear").mkdir()
    for i in range(n):
        clear = cv2.resize(rng.random((6, 8, 3)), (64, 48), interpolation=cv2.INTER_CUBIC).clip(0, 1)
        cv2.imwrite(str(root / "clear" / f"{i}.png"), (clear * 255).round().astype(np.uint8))
        cv2.imwrite(str(root / "hazy" / f"{i}_1.png"), ((clear * 0.6 + 0.35) * 255).round().astype(np.uint8))
    return root


def save(G, path):
    torch.save({"G": G.state_dict(), "G_config": G.config, "config": {}, "step": 0, "metrics": {}}, path)
    return path


def test_report_scores_the_networks_own_t_and_each_filter(tmp_path, capsys):
    torch.manual_seed(0)
    G = UNetGenerator(width=4, depth=3, head="asm", upsample="bilinear").eval()
    conv = G.up[-1][1].op[1]
    torch.nn.init.normal_(conv.weight, std=2.0)  # a textured t around 0.5, so filtering it matters
    torch.nn.init.zeros_(conv.bias)
    ckpt = save(G, tmp_path / "asm.pt")
    pairs = write_pairs(tmp_path / "set")
    rep = report.t_refine_report([str(ckpt)], [str(pairs)], [(0, 0.0), (4, 1.0)])
    rows = rep["set"]
    assert set(rows) == {"0", "4:1"}
    # "0" is exactly what the model itself outputs (photos this small get their A from themselves)
    from dehaze.io import read_photo

    own = []
    for i in range(2):
        hazy = read_photo(pairs / "hazy" / f"{i}_1.png").rgb
        clear = read_photo(pairs / "clear" / f"{i}.png").rgb
        with torch.inference_mode():
            y = G(torch.from_numpy(hazy.transpose(2, 0, 1).copy())[None] * 2 - 1)
        own.append(score((y[0].numpy().transpose(1, 2, 0) + 1) / 2, clear))
    assert rows["0"]["psnr"] == pytest.approx(np.mean([s["psnr"] for s in own]), abs=1e-4)
    assert abs(rows["4:1"]["psnr"] - rows["0"]["psnr"]) > 1e-3
    assert report.main([str(ckpt), "--sets", str(pairs), "--filters", "0", "4:1"]) == 0
    out = capsys.readouterr().out
    assert "set PSNR / SSIM / spectral" in out and "4:1" in out


def test_bad_filters_and_models_give_one_error(tmp_path, capsys):
    with pytest.raises(ConfigError, match="RADIUS:EPS"):
        report.parse_filter("8")
    with pytest.raises(ConfigError, match="radius"):
        report.parse_filter("0:1")
    image_head = save(UNetGenerator(width=4, depth=3), tmp_path / "img.pt")
    pairs = write_pairs(tmp_path / "set", 1)
    assert report.main([str(image_head), "--sets", str(pairs)]) == 2
    assert "no ASM head" in capsys.readouterr().err
    assert report.main([str(image_head), "--sets", str(pairs), "--filters", "x"]) == 2
    assert "RADIUS:EPS" in capsys.readouterr().err
