import copy

import pytest
import torch

from dehaze.errors import CheckpointError, ConfigError, InputError
from dehaze.gan import load_gan_generator
from dehaze.gan.training import (
    DEFAULTS,
    MODELS,
    build_nets,
    discriminator_step,
    generator_step,
    main,
    resolve_config,
    train,
)
from dehaze.losses import classifier_loss
from dehaze.nets import PhaseSpectrumClassifier, SSDDiscriminator
from dehaze.train.checkpoint import load_checkpoint


def _cfg(data, out, model="ssd-sngan", **kw):
    cfg = copy.deepcopy(DEFAULTS)
    cfg.update(model=model, out=str(out), threads=1, device="cpu")
    cfg["data"].update(path=str(data), resolution=16 if model.endswith("stylegan") else 32)
    cfg["net"].update(width=8 if model.endswith("stylegan") else 16, nz=16, mapping_layers=2)
    cfg["train"].update(steps=2, batch=4, n_dis=2)
    cfg["eval"].update(every=0, samples=8, real=8, grid=4, kid_subsets=2, fid="false", bn_batches=1)
    cfg["log"].update(every=1)
    for k, v in kw.items():
        section, key = k.split("__")
        cfg[section][key] = v
    return cfg


@pytest.mark.parametrize("model", MODELS)
def test_every_model_trains_evaluates_and_checkpoints(model, tiny_images, tmp_path):
    res = train(_cfg(tiny_images, tmp_path / model, model))
    assert res["spec_hf"] >= 0 and res["n"] == 8
    ev = tmp_path / model / "eval" / "0000002"
    assert {"samples.png", "power_spectrum.png", "spectrum_difference.png", "spectra.npz", "metrics.json"} <= \
        {p.name for p in ev.iterdir()}
    state = load_checkpoint(tmp_path / model / "last.pt")
    assert state["step"] == 2 and ("C.net.weight_orig" in state["D"]) == model.startswith("ssd-")
    G, meta = load_gan_generator(tmp_path / model / "last.pt")
    assert meta["weights"] == "G_ema" and G.sample(3).shape == (3, 3, G.resolution, G.resolution)
    stats = (tmp_path / model / "stats.jsonl").read_text()
    assert ("loss/C" in stats) == model.startswith("ssd-") and ("loss/G_spec" in stats) == model.endswith("-reg")
    assert ("loss/R1" in stats) == model.endswith("stylegan")


def test_phase_aware_ssd(tiny_images, tmp_path):
    cfg = resolve_config(_cfg(tiny_images, tmp_path, "ssd-sngan", train__steps=1))
    cfg["feature"] = "phase"
    G, D = build_nets(cfg)
    assert isinstance(D, SSDDiscriminator) and isinstance(D.C, PhaseSpectrumClassifier)
    assert train(cfg)["spec_all"] >= 0


@pytest.mark.parametrize("model", ["ssd-sngan", "ssd-stylegan"])
def test_classifier_gets_its_own_loss_and_no_gradient_reaches_G_through_it(model, tiny_images, tmp_path):
    cfg = resolve_config(_cfg(tiny_images, tmp_path, model))
    torch.manual_seed(0)
    G, D = build_nets(cfg)
    res = cfg["data"]["resolution"]
    real = torch.rand(4, 3, res, res) * 2 - 1
    optD = torch.optim.SGD(D.parameters(), lr=0.0)  # lr 0: look at gradients without moving weights
    optG = torch.optim.SGD(G.parameters(), lr=0.0)

    # D step: C's gradient is exactly the gradient of its own loss (eq. 5) on the same images
    torch.manual_seed(1)
    discriminator_step(G, D, optD, real, cfg, r1=model.endswith("stylegan"))
    got = [p.grad.clone() for p in D.C.parameters()]
    torch.manual_seed(1)
    with torch.no_grad():
        fake = G(G.noise(4))
    for p in D.C.parameters():
        p.grad = None
    classifier_loss(D(real), D(fake)).backward()
    for g, p in zip(got, D.C.parameters()):
        assert torch.allclose(g, p.grad, atol=1e-6)
    assert all(p.grad is not None for p in D.D.parameters())

    # G step: G gets gradient, D and C get none, and C's output has no path back to the image
    optD.zero_grad(set_to_none=True)
    generator_step(G, D, optG, real, cfg)
    assert all(p.grad is None for p in D.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters())
    fake = G(G.noise(4))
    (grad,) = torch.autograd.grad(D(fake).spectral.sum(), fake, allow_unused=True)
    assert grad is None


def test_resume_continues_exactly(tiny_images, tmp_path):
    kw = {"train__decay": "none", "train__n_dis": 1}
    straight = _cfg(tiny_images, tmp_path / "a", "ssd-sngan", train__steps=4, **kw)
    train(straight)
    first = _cfg(tiny_images, tmp_path / "b", "ssd-sngan", train__steps=2, **kw)
    train(first)
    second = _cfg(tiny_images, tmp_path / "b", "ssd-sngan", train__steps=4, **kw)
    train(second, resume=True)
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    assert b["step"] == 4
    for key in ("G", "G_ema", "D"):  # bit-identical: same batches, same noise, same optimiser state
        assert a[key].keys() == b[key].keys()
        for name, t in a[key].items():
            assert torch.equal(t, b[key][name]), (key, name)
    other = _cfg(tiny_images, tmp_path / "b", "ssd-sngan", train__steps=6, net__width=8)
    with pytest.raises(CheckpointError, match="generator"):
        train(other, resume=True)


def test_config_errors_are_one_line(tiny_images, tmp_path, capsys):
    with pytest.raises(ConfigError, match="hinge needs loss.combine=logit"):
        resolve_config(_cfg(tiny_images, tmp_path, loss__combine="prob"))
    with pytest.raises(InputError, match="image folder not found"):
        train(_cfg(tmp_path / "missing", tmp_path / "o"))
    assert main(["--model", "sngan", "--data", "cifar10", "--data-root", str(tmp_path), "--out",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cifar10 not found under") and err.count("\n") == 1
    assert main(["--data", str(tiny_images), "--set", "train.stepz=3"]) == 2
    assert "did you mean train.steps" in capsys.readouterr().err


def test_print_config_resolves_architecture_defaults(capsys):
    assert main(["--model", "ssd-stylegan", "--data", "x", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "gan: nonsat" in out and "combine: prob" in out and "n_dis: 1" in out


def test_shipped_configs_resolve():
    from pathlib import Path

    from dehaze.train.config import load_config

    files = sorted((Path(__file__).resolve().parents[2] / "training" / "configs").glob("unconditional*.yaml"))
    assert len(files) >= 4
    for f in files:
        cfg = resolve_config(load_config(f, [], DEFAULTS))
        assert cfg["model"] in MODELS and cfg["train"]["n_dis"] >= 1


def test_standing_stats_make_eval_mode_match_batch_statistics():
    from dehaze.gan import SNGANGenerator32
    from dehaze.gan.evaluate import standing_stats

    torch.manual_seed(0)
    G = SNGANGenerator32(nz=16, ngf=8)  # fresh running stats (mean 0, var 1) do not fit G's activations
    g = torch.Generator().manual_seed(5)
    z = torch.randn(64, 16, generator=g)
    with torch.no_grad():
        G.train()
        batch_stats = G(z)
        G.eval()
        before = (G(z) - batch_stats).abs().mean()
        standing_stats(G, n_batches=1, batch=64, seed=5)  # the same batch of noise
        after = (G(z) - batch_stats).abs().mean()
    assert not G.training and G.b5.momentum == 0.1
    assert after < 0.05 * before


def test_weighted_combine_trains_under_hinge_and_prob_is_refused(tiny_images, tmp_path):
    cfg = resolve_config(_cfg(tiny_images, tmp_path, "ssd-sngan", loss__combine="weighted", loss__c_loss="hinge",
                              net__drop_high=2))
    G, D = build_nets(cfg)
    assert D.combine == "weighted" and D.C.n_bins == 20  # the official 20 bins at 32 px
    assert train(cfg)["spec_hf"] >= 0
    with pytest.raises(ConfigError, match="logit or weighted"):
        resolve_config(_cfg(tiny_images, tmp_path, "ssd-sngan", loss__combine="prob"))


def test_official_ssd_stylegan_form(tiny_images, tmp_path):
    """(D + stop_grad(0.4·C)) / 2 on logits with a hinge-trained C, beside the default eq. 6 form."""
    from pathlib import Path

    from dehaze.train.config import load_config

    root = Path(__file__).resolve().parents[2] / "training" / "configs"
    default = resolve_config(load_config(root / "unconditional_stylegan32.yaml", [], DEFAULTS))
    assert default["loss"]["combine"] == "prob" and default["loss"]["c_scale"] == 1.0
    official = load_config(root / "unconditional_stylegan32_official.yaml", [], DEFAULTS)
    assert (official["loss"]["combine"], official["loss"]["c_scale"], official["loss"]["c_loss"]) == \
        ("logit", 0.4, "hinge")
    cfg = _cfg(tiny_images, tmp_path, "ssd-stylegan")
    cfg["loss"].update({k: official["loss"][k] for k in ("combine", "c_scale", "c_loss")})
    cfg = resolve_config(cfg)
    G, D = build_nets(cfg)
    out = D(torch.rand(2, 3, 16, 16) * 2 - 1)
    assert out.space == "logit"
    torch.testing.assert_close(out.combined, (out.spatial + 0.4 * out.spectral.detach()) / 2)
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    torch.manual_seed(3)
    stats = discriminator_step(G, D, torch.optim.SGD(D.parameters(), lr=0.0), real, cfg)
    torch.manual_seed(3)
    with torch.no_grad():
        fake = G(G.noise(4))
        c_r, c_f = D(real).spectral, D(fake).spectral
    hinge = torch.relu(1 - 0.4 * c_r).mean() + torch.relu(1 + 0.4 * c_f).mean()  # official: hinge on 0.4·C
    assert stats["loss/C"] == pytest.approx(hinge.item(), rel=1e-5)
    assert train(cfg)["spec_all"] >= 0


def test_missing_inception_or_kid_file_stops_before_training(tiny_images, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DEHAZE_INCEPTION", raising=False)
    for flag, what in (("--inception", "Inception weights not found"),
                       ("--kid-features", "KID feature classifier not found")):
        out = tmp_path / flag.strip("-")
        assert main(["--model", "sngan", "--data", str(tiny_images), "--width", "8", "--steps", "1",
                     "--out", str(out), flag, str(tmp_path / "nope.pth")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and what in err and str(tmp_path / "nope.pth") in err
        assert not out.exists()  # nothing trained, no run folder


def test_eval_of_the_training_generator(tiny_images, tmp_path):
    """eval.generator=G (the paper's protocol) scores G itself, with its own BatchNorm running statistics."""
    from dehaze.gan.data import load_dataset
    from dehaze.gan.evaluate import RealReference, evaluate, real_images

    cfg = _cfg(tiny_images, tmp_path, "sngan", train__steps=1, eval__generator="G")
    got = train(cfg)
    ref = RealReference(real_images(load_dataset(str(tiny_images), None, 32), 8, 0))
    G, meta = load_gan_generator(tmp_path / "last.pt", prefer_ema=False)
    assert meta["weights"] == "G"
    assert evaluate(G, ref, None, n=8, seed=cfg["seed"]).scalars["spec_all"] == pytest.approx(got["spec_all"],
                                                                                              rel=1e-9)
    with pytest.raises(ConfigError, match="eval.generator"):
        resolve_config(_cfg(tiny_images, tmp_path, "sngan", eval__generator="G_ema"))
