import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from dehaze.cli import main
from dehaze.errors import ConfigError, ParityError
from dehaze.export import PadToMultiple, export_onnx, parity_check, sha256_file
from dehaze.nets import UNetGenerator, count_parameters
from dehaze.twoscale import DEFAULT_PROTECTION


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny checkpoint whose EMA weights differ from its raw ones, exported through the CLI."""
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("export")
    G, G_ema = UNetGenerator(width=4, depth=3), UNetGenerator(width=4, depth=3)
    for m in (G, G_ema):  # non-trivial batch-norm statistics, so eval mode matters
        with torch.no_grad():
            m.train()(torch.rand(4, 3, 32, 32) * 2 - 1)
        m.eval()
    config = {"data": {"train": "synthetic:bsds500"}, "lr": 2e-4}
    torch.save(
        {
            "G": G.state_dict(),
            "G_ema": G_ema.state_dict(),
            "G_config": G.config,
            "config": config,
            "step": 1234,
            "metrics": {"sots_indoor_psnr": 20.5},
        },
        d / "ckpt.pt",
    )
    assert main(["export", str(d / "ckpt.pt"), "-o", str(d / "models" / "tiny.onnx")]) == 0
    return d, G, G_ema


def test_card_fields(exported):
    d, G, _ = exported
    onnx_path, card_path = d / "models" / "tiny.onnx", d / "models" / "tiny.json"
    card = json.loads(card_path.read_text())
    assert card["name"] == "tiny" and card["file"] == "tiny.onnx"
    assert card["sha256"] == sha256_file(onnx_path) and card["size_bytes"] == onnx_path.stat().st_size
    assert card["input"] == {
        "name": "input",
        "layout": "NCHW",
        "color": "RGB",
        "range": [-1.0, 1.0],
        "dtype": "float32",
        "multiple": 8,
    }
    assert card["output"]["name"] == "output"
    assert card["parameters"] == count_parameters(G)
    assert card["G_config"] == G.config and card["weights"] == "G_ema" and card["step"] == 1234
    assert card["training_config"]["lr"] == 2e-4
    assert card["training_data"] == {"train": "synthetic:bsds500"}
    assert card["metrics"] == {"sots_indoor_psnr": 20.5}
    assert card["opset"] >= 18 and {"torch", "onnxruntime"} <= set(card["versions"])
    assert 0 <= card["parity"]["max_abs_error"] < 1e-4


def test_onnx_graph_is_dynamic_and_matches_ema(exported):
    d, G, G_ema = exported
    model = onnx.load(d / "models" / "tiny.onnx")
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 18
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [x.dim_param != "" for x in dims] == [True, False, True, True]  # batch, 3, H, W
    assert {p.key: p.value for p in model.metadata_props}["multiple"] == "8"
    sess = ort.InferenceSession(str(d / "models" / "tiny.onnx"), providers=["CPUExecutionProvider"])
    for shape in [(3, 3, 21, 50), (1, 3, 64, 8)]:  # sizes the parity check did not use, one not a multiple
        x = torch.rand(*shape) * 2 - 1
        got = sess.run(["output"], {"input": x.numpy()})[0]
        with torch.inference_mode():
            ema, raw = G_ema(x).numpy(), G(x).numpy()
        assert got.shape == shape
        assert np.abs(got - ema).max() < 1e-4  # the EMA weights were exported
        assert np.abs(got - raw).max() > 1e-3


def test_parity_check_fails_loudly(exported):
    d, G, G_ema = exported
    assert parity_check(d / "models" / "tiny.onnx", G_ema) < 1e-4
    with pytest.raises(ParityError, match="differ"):
        parity_check(d / "models" / "tiny.onnx", G)


def test_failed_parity_leaves_no_files(exported, tmp_path, monkeypatch):
    import dehaze.export as export_mod

    def fail(*args, **kwargs):
        raise ParityError("ONNX Runtime and PyTorch differ by 1 (> 0.0001)")

    monkeypatch.setattr(export_mod, "parity_check", fail)
    with pytest.raises(ParityError):
        export_onnx(exported[0] / "ckpt.pt", tmp_path / "out.onnx")
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(exported, tmp_path, capsys):
    with pytest.raises(ConfigError, match="opset"):
        export_onnx(exported[0] / "ckpt.pt", tmp_path / "m.onnx", opset=13)
    with pytest.raises(ConfigError, match=".onnx"):
        export_onnx(exported[0] / "ckpt.pt", tmp_path / "m.pt")
    assert main(["export", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "error: checkpoint not found" in capsys.readouterr().err


def test_pad_to_multiple_wrapper():
    G = UNetGenerator(width=4, depth=3).eval()
    x = torch.rand(1, 3, 13, 30) * 2 - 1
    with torch.inference_mode():
        assert torch.allclose(PadToMultiple(G, 8)(x), G(x))


def test_export_asm_head_with_eval_records_scores_in_card(tmp_path):
    """The physics head exports with parity, and --eval writes measured means plus the command."""
    torch.manual_seed(1)
    G = UNetGenerator(width=4, depth=3, head="asm", upsample="bilinear").eval()
    torch.save({"G": G.state_dict(), "G_config": G.config, "config": {}, "step": 1, "metrics": {}},
               tmp_path / "asm.pt")
    sets = tmp_path / "set"
    rng = np.random.default_rng(0)
    for sub in ("hazy", "clear"):
        (sets / sub).mkdir(parents=True)
    from PIL import Image

    for i in range(2):
        clear = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(clear).save(sets / "clear" / f"{i}.png")
        Image.fromarray((clear * 0.6 + 90).astype(np.uint8)).save(sets / "hazy" / f"{i}_1.png")
    out = tmp_path / "models" / "asm.onnx"
    assert main(["export", str(tmp_path / "asm.pt"), "-o", str(out), "--eval", str(sets)]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    ev = card["evaluation"]["set"]
    assert ev["pairs"] == 2 and ev["command"].startswith("dehaze eval ")
    assert set(ev["methods"]) == {"model", "dcp", "hazy"}
    assert all(np.isfinite(v["psnr"]) for v in ev["methods"].values())
    assert card["parity"]["max_abs_error"] < 1e-4
    assert set(card["haze"]) == {"airlight", "transmission", "airlight_used"}
    assert card["two_scale"]["working_size"] == 384 and card["two_scale"]["radius"] == 24  # the defaults
    assert card["two_scale"]["eps"] == 0.01
    assert card["two_scale"]["t_floor"] == 0.1

    # two-scale graph: the image (and optionally the airlight, -1: estimate) in, raw t and A out
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input", "airlight"]
    assert [o.name for o in sess.get_outputs()] == ["transmission", "airlight_used"]
    x = torch.rand(2, 3, 21, 30) * 2 - 1
    est = -np.ones((2, 3), np.float32)
    t, used = sess.run(None, {"input": x.numpy(), "airlight": est})
    with torch.inference_mode():
        t_ref, A = G.haze(x)
    assert t.shape == (2, 1, 21, 30) and np.abs(t - t_ref.numpy()).max() < 1e-5
    assert np.allclose(used, A.flatten(1).numpy(), atol=1e-5)
    given = np.array([[0.9, 0.8, 0.7], [-1, 0.6, -1]], np.float32)  # per channel: given or estimated
    _, used2 = sess.run(None, {"input": x.numpy(), "airlight": given})
    assert np.allclose(used2, np.where(given >= 0, given, used), atol=1e-6)


def test_export_averages_snapshots_of_one_run(exported, tmp_path, capsys):
    d, G, G_ema = exported
    torch.manual_seed(5)
    other = UNetGenerator(width=4, depth=3)
    with torch.no_grad():
        other.train()(torch.rand(4, 3, 32, 32) * 2 - 1)
    torch.save({"G": other.state_dict(), "G_ema": other.state_dict(), "G_config": other.config,
                "config": {}, "step": 2000, "metrics": {}}, tmp_path / "later.pt")
    out = tmp_path / "avg.onnx"
    assert main(["export", str(d / "ckpt.pt"), str(tmp_path / "later.pt"), "-o", str(out)]) == 0
    assert "averaged over 2 checkpoints" in capsys.readouterr().err
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["averaged_checkpoints"] == 2 and [c["step"] for c in card["checkpoint"]] == [1234, 2000]
    # the exported graph is the mean of the two EMA generators (weights and BatchNorm statistics)
    mean = UNetGenerator(width=4, depth=3)
    a, b = G_ema.state_dict(), other.state_dict()
    mean.load_state_dict({k: (a[k] + b[k]) / 2 if a[k].is_floating_point() else b[k] for k in a})
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        want = mean.eval()(x).numpy()
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    assert np.abs(got - want).max() < 1e-4
    assert not np.allclose(want, G_ema(x).detach().numpy(), atol=1e-3)


def test_export_refuses_to_average_different_generators(exported, tmp_path, capsys):
    wide = UNetGenerator(width=8, depth=3)
    torch.save({"G": wide.state_dict(), "G_config": wide.config, "config": {}, "step": 1}, tmp_path / "wide.pt")
    assert main(["export", str(exported[0] / "ckpt.pt"), str(tmp_path / "wide.pt"), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "average one run only" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_export_t_refine_sets_the_two_scale_guided_filter(tmp_path, capsys):
    """--t-refine sets the guided filter on t that the card's two_scale records, and the Dehazer's
    output matches PyTorch's G.haze -> GuidedUpsample -> inversion; G_config carries no filter."""
    from dehaze.inference import Dehazer
    from dehaze.nets.unet import GuidedUpsample, invert_scattering

    torch.manual_seed(3)
    G = UNetGenerator(width=4, depth=3, head="asm").eval()
    torch.save({"G": G.state_dict(), "G_config": G.config, "config": {}, "step": 1, "metrics": {}},
               tmp_path / "asm.pt")
    out = tmp_path / "gf.onnx"
    assert main(["export", str(tmp_path / "asm.pt"), "-o", str(out), "--t-refine", "3", "--t-refine-eps", "0.01",
                 "--working-size", "256"]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["G_config"] == G.config and "t_refine" not in card["G_config"]
    assert {k: card["two_scale"][k] for k in ("working_size", "radius", "eps", "t_min", "t_floor")} == {
        "working_size": 256, "radius": 3, "eps": 0.01, "t_min": 0.05, "t_floor": 0.1}
    assert card["two_scale"]["protect"] == DEFAULT_PROTECTION.settings()  # the measured clipping protection
    assert card["parity"]["max_abs_error"] < 1e-4
    x = torch.rand(1, 3, 29, 41) * 2 - 1
    rgb = ((x[0].permute(1, 2, 0) + 1) / 2).numpy()
    y = Dehazer(out, protect=False)(rgb)  # the plain inversion: what the torch reference does
    with torch.inference_mode():
        plain = ((G(x)[0].permute(1, 2, 0) + 1) / 2).numpy()  # the raw t
        t, A = G.haze(x)
        image = (x + 1) / 2
        ref = invert_scattering(image, GuidedUpsample(3, 0.01, G.t_min)(t, image, image), A)[0].permute(1, 2, 0).numpy()
    assert np.abs(y - ref).max() < 1e-4 and np.abs(y - plain).max() > 1e-3
    assert main(["export", str(tmp_path / "asm.pt"), "-o", str(tmp_path / "bad.onnx"), "--t-refine", "-2"]) == 2
    assert "t_refine=-2" in capsys.readouterr().err and not (tmp_path / "bad.onnx").exists()


def test_export_filter_defaults_come_from_an_older_checkpoint_else_the_measured_ones(tmp_path):
    torch.manual_seed(3)
    G = UNetGenerator(width=4, depth=3, head="asm").eval()
    old = {**G.config, "t_refine": 5, "t_refine_eps": 0.5}  # G_config of a checkpoint from before GuidedUpsample
    torch.save({"G": G.state_dict(), "G_config": old, "config": {}, "step": 1}, tmp_path / "old.pt")
    torch.save({"G": G.state_dict(), "G_config": G.config, "config": {}, "step": 1}, tmp_path / "new.pt")
    two_scale = {}
    for name, extra in (("old", []), ("old-eps", ["--t-refine-eps", "0.2"]), ("new", [])):
        out = tmp_path / f"{name}.onnx"
        assert main(["export", str(tmp_path / f"{name.split('-')[0]}.pt"), "-o", str(out), "--no-check", *extra]) == 0
        card = json.loads(out.with_suffix(".json").read_text())
        assert card["G_config"] == G.config  # the old keys are set aside
        two_scale[name] = tuple(card["two_scale"][k] for k in ("radius", "eps", "working_size"))
    assert two_scale == {"old": (5, 0.5, 384), "old-eps": (5, 0.2, 384), "new": (24, 0.01, 384)}


def test_cli_mirrors_the_exporters_defaults():
    import dehaze.cli.export as cli
    import dehaze.export as lib

    for name in ("MIN_OPSET", "DEFAULT_WORKING_SIZE", "DEFAULT_T_REFINE", "DEFAULT_T_REFINE_EPS"):
        assert getattr(cli, name) == getattr(lib, name), name
