"""End-to-end tests of the dehazing trainer on tiny generated data (CPU, seconds)."""

import copy
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from dehaze.errors import ConfigError
from dehaze.train.config import load_config, read_config_file
from dehaze.train.dehazing import DEFAULTS, DEFAULTS_FILE, MODES, check_config, main, read_config, train

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(dehazing_data):
    split = dehazing_data / "heldout.txt"
    if not split.exists():
        split.write_text("# held out of training (a split file, as training/splits/heldout-v1.txt)\np5.png\n")
    return dehazing_data


def tiny_cfg(data: Path, out: Path, mode: str, steps: int = 3, **extra) -> dict:
    o = [f"mode={mode}", f"out={out}", f"data.clean=[{data / 'clean'}]", f"val.dirs=[{data / 'val'}]",
         "data.crop=32", "data.workers=0", "data.samples_per_epoch=16", "train.batch=2", f"train.steps={steps}",
         "val.every=2", "log.every=1", "log.ckpt_every=2", "train.ema_start=1", "device=cpu",
         "model.G={width: 4, depth: 3, max_width: 16, norm: batch, dropout: 0.0, upsample: deconv, residual: false, head: image, t_min: 0.05}",
         "model.D={width: 4, n_layers: 2, norm: batch, spectral_norm: false}", "model.C.conv_width=4",
         f"data.exclude=[{data / 'heldout.txt'}]",
         f"val.synthetic={{photos: {data / 'heldout.txt'}, root: {data / 'clean'}, crop: 32, haze: null, seed: 1}}"]
    o += [f"{k}={v}" for k, v in extra.items()]
    return load_config(None, o, DEFAULTS)


def test_defaults_ship_inside_the_package_and_every_config_loads():
    """One source of defaults: dehaze/train/defaults.yaml, package data read through importlib.resources;
    every dehazing config under training/configs/ is applied on top of it and passes the checks."""
    import dehaze.train

    assert DEFAULTS_FILE.parent == Path(dehaze.train.__file__).parent and read_config_file(DEFAULTS_FILE) == DEFAULTS
    assert not (REPO / "training" / "configs" / "default.yaml").exists()
    check_config(copy.deepcopy(DEFAULTS))
    files = [f for f in (REPO / "training" / "configs").rglob("*.yaml") if "unconditional" not in f.name]
    assert len(files) >= 9
    for f in files:
        check_config(read_config(f))


def test_configs_of_earlier_runs_still_load():
    """The shipped model's run configs name settings removed since (at their "off" values)."""
    old = sorted((REPO / "models").glob("*/*/config.yaml"))
    assert old
    for f in old:
        cfg = read_config(f)
        check_config(cfg)
        assert cfg["mode"] == "ssd-phase" and set(cfg["model"]["G"]) == set(DEFAULTS["model"]["G"])


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_trains_and_writes_a_run(data, tmp_path, mode):
    val = train(tiny_cfg(data, tmp_path / mode, mode))
    run = tmp_path / mode
    assert {"config.yaml", "last.pt", "best.pt", "stats.jsonl"} <= {p.name for p in run.iterdir()}
    assert any((run / "images").glob("val_spectrum-*.png")) and any((run / "images").glob("val_hazy*.png"))
    assert any((run / "tb").iterdir())
    assert np.isfinite(val["psnr"]) and 0 < val["psnr"] < 60
    assert {k.split("/")[-1] for k in val} >= {"psnr", "ssim", "spec", "psnr_hazy", "ssim_hazy"}
    ckpt = torch.load(run / "last.pt", weights_only=False)
    assert ckpt["step"] == 3 and (ckpt["D"] is None) == (mode == "l1")
    stats = (run / "stats.jsonl").read_text()
    assert "loss/G_L1" in stats
    # best.pt is picked on the held-out synthetic pairs (val.select: heldout), not on the paired folders
    assert val["psnr"] == val["heldout/psnr"] != val[f"{data.name}_val/psnr"]
    spectra = json.loads((run / "val_spectra.json").read_text())
    assert spectra["step"] == 3 and set(spectra["curves"]) == {"heldout", f"{data.name}_val"}
    if mode == "l1":
        assert not any("acc/" in k for k in val)
    else:  # D's (and C's) accuracy on pairs no update has seen
        assert 0 <= val["heldout/acc/D"] <= 1
    if mode.startswith("ssd"):
        assert "loss/C" in stats and "acc/C" in stats
        assert 0 <= val["heldout/acc/C"] <= 1 and 0 <= val["heldout/auc/C"] <= 1 and val["heldout/loss/C"] > 0


def test_held_out_photos_never_reach_training(data):
    from dehaze.train.dehazing import build_train_set, load_val_sets

    cfg = tiny_cfg(data, data / "unused", "l1")
    assert [f.name for f in build_train_set(cfg).files] == ["p0.png", "p1.png", "p2.png", "p3.png", "p4.png"]
    vs = load_val_sets(cfg, 8)
    assert [it["name"] for it in vs["heldout"]] == ["p5"] and vs["heldout"][0]["hazy"].shape == (3, 32, 32)
    again = load_val_sets(cfg, 8)  # the same pairs for every run: fixed seed, no training randomness
    assert torch.equal(vs["heldout"][0]["hazy"], again["heldout"][0]["hazy"])


def test_missing_held_out_photo_is_one_error(data, tmp_path):
    from dehaze.errors import InputError
    from dehaze.train.dehazing import load_val_sets

    split = tmp_path / "split.txt"
    split.write_text("p5.png\nnot-there.png\n")
    cfg = tiny_cfg(data, tmp_path / "r", "l1", **{"val.synthetic.photos": str(split)})
    with pytest.raises(InputError, match="not-there.png"):
        load_val_sets(cfg, 8)


@pytest.mark.parametrize("mode,losses", [
    ("ssd", {"loss.gan": "hinge", "loss.combine": "logit", "loss.spectral_reg": 2.0, "loss.adv": 0.5}),
    ("pix2pix", {"loss.gan": "lsgan", "loss.l1": 10.0}),
])
def test_generator_loss_is_the_weighted_sum_of_its_logged_terms(data, tmp_path, mode, losses):
    cfg = tiny_cfg(data, tmp_path / mode, mode, **losses)
    train(cfg)
    rows = [json.loads(r) for r in (tmp_path / mode / "stats.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "loss/G" in r]
    assert len(rows) == 3
    lc = cfg["loss"]
    for r in rows:
        assert ("loss/G_spec" in r) == (lc["spectral_reg"] > 0)
        total = lc["l1"] * r["loss/G_L1"] + lc["adv"] * r["loss/G_adv"] + lc["spectral_reg"] * r.get("loss/G_spec", 0)
        assert r["loss/G"] == pytest.approx(total, rel=1e-5)
        assert all(np.isfinite(v) for v in r.values())
        if lc["gan"] == "lsgan":
            assert r["loss/G_adv"] >= 0 and r["loss/D"] >= 0  # squared errors


def test_asm_head_supervised_with_synthesised_airlight_and_transmission(data, tmp_path):
    G = "{width: 4, depth: 3, max_width: 16, norm: batch, dropout: 0.0, upsample: bilinear, residual: false, head: asm, t_min: 0.05}"
    train(tiny_cfg(data, tmp_path / "a", "ssd-phase", **{"model.G": G, "loss.airlight": 10.0,
                                                           "loss.transmission": 5.0}))
    rows = [r for r in (tmp_path / "a" / "stats.jsonl").read_text().splitlines() if "loss/G_A" in r]
    assert len(rows) == 3 and '"loss/G_t"' in rows[0]
    with pytest.raises(ConfigError, match="head=asm"):
        train(tiny_cfg(data, tmp_path / "b", "l1", **{"loss.airlight": 1.0}))
    with pytest.raises(ConfigError, match="synthetic pairs only"):
        train(tiny_cfg(data, tmp_path / "c", "l1", **{"model.G": G, "loss.transmission": 1.0,
                                                       "data.paired": f"[{data / 'val'}]"}))

    # a checkpoint from before GuidedUpsample has the weightless t_refine keys in its G_config: the warm
    # start still accepts it; the settings themselves are retired (only their old "off" values are read)
    old = torch.load(tmp_path / "a" / "last.pt", weights_only=False)
    old["G_config"] = {**old["G_config"], "t_refine": 2, "t_refine_eps": 0.5}
    torch.save(old, tmp_path / "old.pt")
    train(tiny_cfg(data, tmp_path / "gf", "ssd-phase", steps=2,
                   **{"model.G": G, "train.init": str(tmp_path / "old.pt"), "loss.transmission": 5.0}))
    ckpt = torch.load(tmp_path / "gf" / "last.pt", weights_only=False)
    assert "t_refine" not in ckpt["G_config"] and ckpt["step"] == 2
    assert "t_refine" not in read_config(None)["model"]["G"]
    retired = tmp_path / "retired.yaml"
    retired.write_text("model:\n  G: {t_refine: 0, t_refine_eps: 1.0}\n")
    assert "t_refine" not in read_config(retired)["model"]["G"]
    retired.write_text("model:\n  G: {t_refine: 8}\n")
    with pytest.raises(ConfigError, match="model.G.t_refine was removed"):
        read_config(retired)


def _sd_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _equal(a, b) -> bool:
    """Exact equality of (nested) checkpoint entries: tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def test_interrupted_run_resumes_bit_identically(data, tmp_path, monkeypatch):
    """A run stopped (SIGTERM) after step 2 of 4 and resumed ends with exactly the weights, EMA and optimiser
    states of the uninterrupted run: the step sampler gives the same batches and the same crops and haze (in a
    worker process too, across an epoch boundary), the random state is restored."""
    import dehaze.train.dehazing as dz

    extra = {"data.workers": 1, "data.samples_per_epoch": 6, "loss.transmission": 5.0, "model.G": (
        "{width: 4, depth: 3, max_width: 16, norm: batch, dropout: 0.2, upsample: bilinear, residual: false, "
        "head: asm, t_min: 0.05}")}  # dropout: the torch random stream matters too
    straight = tiny_cfg(data, tmp_path / "a", "ssd-phase", steps=4, **extra)
    train(straight)

    calls, step = [], dz.train_step

    def stop_after_two(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # Run turns it into "checkpoint and stop" after this step
        return step(*args, **kw)

    out = tmp_path / "b"
    with monkeypatch.context() as mp:
        mp.setattr(dz, "train_step", stop_after_two)
        train(tiny_cfg(data, out, "ssd-phase", steps=4, **extra))
    assert torch.load(out / "last.pt", weights_only=False)["step"] == 2
    (out / ".last.pt.999.tmp").write_bytes(b"half written")  # a kill while writing: last.pt is untouched
    train(tiny_cfg(data, out, "ssd-phase", steps=4, **extra), resume=True)
    a, b = (torch.load(d / "last.pt", weights_only=False) for d in (tmp_path / "a", out))
    assert b["step"] == 4 and (out / "config-resume.yaml").is_file()
    for key in ("G", "G_ema", "D", "optG", "optD", "best_psnr", "metrics"):
        assert _equal(a[key], b[key]), key


@pytest.mark.parametrize("argv,message", [
    (["--set", "train.stepz=3"], "unknown config key 'train.stepz' (did you mean train.steps"),
    (["--set", "mode=gan"], "mode 'gan' is not one of"),
    (["--set", "data.clean=[/nonexistent/photos]"], "/nonexistent/photos"),
])
def test_bad_input_gives_one_error_line(data, tmp_path, capsys, argv, message):
    base = ["--set", f"out={tmp_path / 'x'}", "--set", f"val.dirs=[{data / 'val'}]", "--set", "data.workers=0"]
    assert main(base + argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_incompatible_checkpoint_is_refused(data, tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny_cfg(data, out, "l1", steps=2))
    cfg = tiny_cfg(data, out, "l1", steps=4)
    cfg["model"]["G"]["width"] = 8
    from dehaze.errors import CheckpointError

    with pytest.raises(CheckpointError, match="differs"):
        train(cfg, resume=True)
    capsys.readouterr()
    here = ["--set", f"data.clean=[{data / 'clean'}]", "--set", "val.dirs=[]"]  # not ../shared: absent in some clones
    assert main(["--set", f"out={tmp_path / 'none'}", *here, "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


@pytest.mark.parametrize("scale", [[0.0, 1.0], [0.5, 0.25], [0.5, 1.5], [0.5], "big"])
def test_crop_scale_range_is_checked(scale):
    from dehaze.train.dehazing import check_config

    cfg = copy.deepcopy(DEFAULTS)
    check_config(cfg)  # the defaults pass
    cfg["data"]["scale"] = scale
    with pytest.raises(ConfigError, match="data.scale"):
        check_config(cfg)


@pytest.mark.parametrize("key,value", [("adv", -1.0), ("l1", "a lot"), ("airlight", -0.5)])
def test_loss_weights_are_checked(key, value):
    cfg = copy.deepcopy(DEFAULTS)
    cfg["loss"][key] = value
    with pytest.raises(ConfigError, match=f"loss.{key} must be a number >= 0"):
        check_config(cfg)


def test_a_generator_loss_must_remain():
    cfg = copy.deepcopy(DEFAULTS)
    cfg["mode"], cfg["loss"]["l1"] = "l1", 0.0  # l1 mode has no adversary: loss.adv does not count
    with pytest.raises(ConfigError, match="every generator loss weight is 0"):
        check_config(cfg)
    cfg["mode"] = "pix2pix"
    check_config(cfg)  # the adversarial loss alone


def test_warm_start_takes_averaged_G_and_last_D(data, tmp_path):
    from dehaze.nets import average_generators

    src = tmp_path / "src"
    train(tiny_cfg(data, src, "ssd", steps=4, **{"log.snapshot_every": 2}))
    snaps = sorted(str(p) for p in src.glob("snapshot-*.pt"))
    assert len(snaps) == 2
    import dehaze.train.dehazing as dz

    captured, orig = {}, dz._warm_start

    def spy(init, mode, m):
        orig(init, mode, m)
        captured.update(G=copy.deepcopy(m.G.state_dict()), D=copy.deepcopy(m.D.state_dict()),
                        G_ema=copy.deepcopy(m.ema.module.state_dict()))

    dz._warm_start = spy
    try:
        train(tiny_cfg(data, tmp_path / "ft", "ssd", steps=2, **{"train.init": f"[{', '.join(snaps)}]"}))
    finally:
        dz._warm_start = orig
    avg, _ = average_generators(snaps)
    assert _sd_equal(captured["G"], avg.state_dict()) and _sd_equal(captured["G_ema"], avg.state_dict())
    assert _sd_equal(captured["D"], torch.load(snaps[-1], weights_only=False)["D"])
    assert torch.load(tmp_path / "ft" / "last.pt", weights_only=False)["step"] == 2
    cfg = tiny_cfg(data, tmp_path / "bad", "ssd", steps=2, **{"train.init": snaps[-1]})
    cfg["model"]["G"]["width"] = 8
    from dehaze.errors import CheckpointError

    with pytest.raises(CheckpointError, match="train.init"):
        train(cfg)
    cfg = tiny_cfg(data, tmp_path / "bad2", "ssd", steps=2)
    cfg["train"]["init"] = 3
    with pytest.raises(ConfigError, match="train.init"):
        train(cfg)


@pytest.mark.parametrize("key", ["log.every", "val.every"])
def test_zero_intervals_are_refused_before_training(key):
    """``val.every=0`` used to divide by zero at the first step, after the data had loaded."""
    cfg = copy.deepcopy(DEFAULTS)
    sec, k = key.split(".")
    cfg[sec][k] = 0
    with pytest.raises(ConfigError, match=key):
        check_config(cfg)
