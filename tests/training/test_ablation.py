"""training/ablation.py: the report over seeds (mean ± sd, paired differences, figures) from run logs."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ablation", ROOT / "training" / "ablation.py")
ablation = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ablation)


def _fake_run(d, seed, psnr, acc_c=None):
    d.mkdir(parents=True)
    rows = [{"step": s, "loss/D": 1.0, "acc/D": 0.6} | ({"acc/C": acc_c, "loss/C": 1.3} if acc_c else {})
            for s in (25, 50)]
    val = {f"val/{k}": v for k, v in {"heldout/psnr": psnr, "heldout/ssim": 0.9, "heldout/spec": 0.01,
                                       "sots-dev_outdoor/psnr": psnr - 1, "psnr": psnr}.items()}
    if acc_c:
        val["val/heldout/acc/C"] = acc_c
    rows.append({"step": 50, **val})
    (d / "stats.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    curves = {"heldout": {"output": [1.0, 0.5, 0.2], "ground_truth": [1.0, 0.4, 0.1]}}
    (d / "val_spectra.json").write_text(json.dumps({"step": 50, "curves": curves}))


def test_report_gives_mean_sd_and_paired_differences(tmp_path, capsys):
    runs = tmp_path / "runs"
    for seed, (a, b) in enumerate([(20.0, 20.5), (21.0, 21.9), (22.0, 22.6)]):
        _fake_run(runs / f"pix2pix-half-s{seed}", seed, a)
        _fake_run(runs / f"ssd-s{seed}", seed, b, acc_c=0.6 + 0.01 * seed)
    out = tmp_path / "report"
    assert ablation.main(["report", "--runs", str(runs), "--arms", "pix2pix-half", "ssd", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    ssd = res["arms"]["ssd"]["heldout/psnr"]
    assert ssd["mean"] == pytest.approx(21.6667, abs=1e-3) and ssd["std"] == pytest.approx(1.0693, abs=1e-3)
    diff = res["paired"]["ssd - pix2pix-half"]["heldout/psnr"]
    assert diff["mean"] == pytest.approx(2 / 3, abs=1e-6) and diff["std"] == pytest.approx(0.2082, abs=1e-3)
    assert 0 < diff["p"] < 0.1  # consistent per-seed gains: a paired test sees them
    assert res["arms"]["ssd"]["heldout/acc/C"]["mean"] == pytest.approx(0.61)
    assert "heldout/acc/C" not in res["arms"]["pix2pix-half"]
    assert (out / "spectra.png").stat().st_size > 0 and (out / "c_accuracy.png").stat().st_size > 0
    assert "| ssd | 3 | 21.67 ± 1.07 |" in (out / "table.md").read_text()
    assert res["arms"]["ssd"]["train_acc_C_second_half"]["mean"] == pytest.approx(0.61)
    assert math.isnan(ablation.mean_std([1.0])[1])


def test_report_without_runs_is_one_error(tmp_path, capsys):
    assert ablation.main(["report", "--runs", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "no finished runs" in capsys.readouterr().err
