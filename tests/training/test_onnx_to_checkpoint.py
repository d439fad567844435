"""Tests of training/onnx_to_checkpoint.py: a generator recovered from an exported model computes what it did."""

import importlib.util
from pathlib import Path

import torch

from dehaze.export import export_onnx
from dehaze.nets import UNetGenerator

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("onnx_to_checkpoint", ROOT / "training" / "onnx_to_checkpoint.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_recovered_generator_hazes_as_the_exported_one(tmp_path):
    torch.manual_seed(0)
    G = UNetGenerator(width=4, depth=3, head="asm", upsample="bilinear")
    with torch.no_grad():  # non-trivial batch-norm statistics, so the folding matters
        G.train()(torch.rand(4, 3, 32, 32) * 2 - 1)
    G.eval()
    torch.save({"G": G.state_dict(), "G_config": G.config, "config": {}, "step": 1, "metrics": {}},
               tmp_path / "asm.pt")
    export_onnx(tmp_path / "asm.pt", tmp_path / "asm.onnx")

    script = _script()
    R, cfg = script.generator_from_onnx(tmp_path / "asm.onnx")
    assert cfg["norm"] == "none" and cfg["head"] == "asm"
    x = torch.rand(2, 3, 24, 40) * 2 - 1
    with torch.inference_mode():
        (t, A), (t_r, A_r) = G.haze(x), R.haze(x)
    torch.testing.assert_close(t_r, t, atol=1e-5, rtol=0)
    torch.testing.assert_close(A_r, A, atol=1e-5, rtol=0)

    assert script.main([str(tmp_path / "asm.onnx"), "-o", str(tmp_path / "back.pt")]) == 0
    ckpt = torch.load(tmp_path / "back.pt", weights_only=False)
    assert ckpt["G_config"] == cfg and ckpt["step"] == 0
