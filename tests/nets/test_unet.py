import pytest
import torch

from dehaze.errors import CheckpointError
from dehaze.nets import UNetGenerator, build_generator, count_parameters, load_generator
from dehaze.nets.unet import refine_transmission


@pytest.mark.parametrize("h,w", [(37, 50), (64, 64), (1, 1), (33, 129)])
@pytest.mark.parametrize("kw", [dict(width=4, depth=3), dict(width=4, depth=4, upsample="bilinear", residual=True,
                                                               norm="none"), dict(width=4, depth=2, norm="instance",
                                                                                  dropout=0.5)])
def test_any_size_in_same_size_out_in_range(h, w, kw):
    G = UNetGenerator(**kw).eval()
    y = G(torch.rand(2, 3, h, w) * 2 - 1)
    assert y.shape == (2, 3, h, w)
    assert y.min() >= -1 and y.max() <= 1


def test_pix2pix_default_size_and_multiple():
    G = UNetGenerator(depth=8)
    assert G.multiple == 256
    assert 54e6 < count_parameters(G) < 55e6  # pix2pix unet_256 has 54.4 M parameters


def test_residual_identity_at_init_is_close_to_input():
    G = UNetGenerator(width=4, depth=3, residual=True, norm="none")
    torch.nn.init.zeros_(G.up[-1][1].op.weight)
    torch.nn.init.zeros_(G.up[-1][1].op.bias)
    x = torch.rand(1, 3, 16, 16) * 1.8 - 0.9
    assert torch.allclose(G(x), x, atol=1e-6)


def test_rejects_wrong_channels_and_bad_config():
    with pytest.raises(ValueError, match="expected"):
        UNetGenerator(width=4, depth=2)(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="norm"):
        UNetGenerator(norm="group")
    with pytest.raises(CheckpointError):
        build_generator({"width": 4, "nonsense": 1})


def test_load_generator_round_trip_and_errors(tmp_path):
    G = UNetGenerator(width=4, depth=3)
    G_ema = UNetGenerator(width=4, depth=3)
    path = tmp_path / "ckpt.pt"
    torch.save({"G": G.state_dict(), "G_ema": G_ema.state_dict(), "G_config": G.config, "config": {"a": 1},
                "step": 7, "metrics": {"psnr": 20.0}}, path)
    loaded, meta = load_generator(path)
    assert meta["weights"] == "G_ema" and meta["step"] == 7
    x = torch.rand(1, 3, 16, 16)
    assert torch.allclose(loaded(x), G_ema.eval()(x))
    with pytest.raises(CheckpointError, match="not found"):
        load_generator(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_generator(tmp_path / "junk.pt")
    bad = dict(torch.load(path, weights_only=False), G_config={**G.config, "width": 8})
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="do not match"):
        load_generator(tmp_path / "bad.pt")


def test_asm_head_inverts_the_scattering_model():
    G = UNetGenerator(width=4, depth=3, head="asm", norm="none").eval()
    last = G.up[-1][1].op
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)  # t = t_min + (1 - t_min)·σ(0)
    torch.nn.init.zeros_(G.airlight.weight)
    torch.nn.init.constant_(G.airlight.bias, 0.0)  # A = 0.5 + 0.5·σ(0) = 0.75
    t, A = G.t_min + (1 - G.t_min) * 0.5, 0.75
    clear = torch.rand(1, 3, 24, 40) * 0.8 + 0.1
    hazy = clear * t + A * (1 - t)
    out = (G(hazy * 2 - 1) + 1) / 2
    assert torch.allclose(out, clear, atol=1e-5)
    assert G.config["head"] == "asm"
    J, t_map, A_pred = G(hazy * 2 - 1, return_asm=True)  # the decomposition, for supervising it
    assert torch.equal(J, out * 2 - 1) or torch.allclose(J, out * 2 - 1)
    assert t_map.shape == (1, 1, 24, 40) and torch.allclose(t_map, torch.full_like(t_map, t))
    assert A_pred.shape == (1, 3, 1, 1) and torch.allclose(A_pred, torch.full_like(A_pred, A))
    with pytest.raises(ValueError, match="head='asm'"):
        UNetGenerator(width=4, depth=3)(hazy, return_asm=True)
    with pytest.raises(ValueError, match="head"):
        UNetGenerator(head="dcp")


def test_the_removed_prior_airlight_head_is_named_and_the_mean_head_loads():
    """``airlight_head: prior`` was an experiment (docs/ablation.md, "Removed experiments"); a generator
    config saying ``mean`` (the only head) still builds, one asking for ``prior`` gets a one-line error."""
    cfg = UNetGenerator(width=4, depth=3, head="asm").config
    assert "airlight_head" not in cfg
    assert build_generator({**cfg, "airlight_head": "mean"}).config == cfg
    with pytest.raises(CheckpointError, match="airlight_head: prior.*removed"):
        build_generator({**cfg, "airlight_head": "prior"})


def test_refine_transmission_follows_image_edges_and_drops_copied_texture():
    """A t whose edge is 4 px off the image's edge and that carries the image's texture comes out with
    its edge on the image's and flat within each side (He et al.'s guided filter)."""
    torch.manual_seed(0)
    image = torch.full((1, 3, 48, 64), 0.3)
    image[..., 32:] = 0.8  # a vertical edge at x = 32
    image = image + 0.01 * torch.randn(1, 1, 48, 64)  # fine texture, shared by the channels
    t = torch.full((1, 1, 48, 64), 0.4)
    t[..., 36:] = 0.9  # the network's edge is 4 px to the right
    t = t + 0.05 * torch.randn(1, 1, 48, 64)  # and its own noise
    r = refine_transmission(image, t, radius=6, eps=1e-3, t_min=0.05)
    assert r.shape == t.shape and r.min() >= 0.05 and r.max() <= 1.0
    # its biggest step moves to the image's edge, and between the two edges it rises towards the bright side
    assert int(r.mean(dim=(0, 1, 2)).diff().argmax()) == 31 and int(t.mean(dim=(0, 1, 2)).diff().argmax()) == 35
    assert r[..., 32:36].mean() > t[..., 32:36].mean() + 0.15
    # within each flat side the noise is mostly gone
    assert r[..., 8:24].std() < 0.3 * t[..., 8:24].std()
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    refine_transmission(x, torch.rand(2, 1, 16, 16), radius=2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="image"):
        refine_transmission(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), 2)
    with pytest.raises(ValueError, match="t: expected"):
        refine_transmission(torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 9), 2)
    with pytest.raises(ValueError, match="radius"):
        refine_transmission(torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8), 0)


def test_t_refine_filters_the_asm_heads_transmission():
    torch.manual_seed(1)
    G = UNetGenerator(width=4, depth=3, head="asm").eval()
    assert "t_refine" not in G.config  # off: configs of older models stay as they were
    x = torch.rand(2, 3, 30, 45) * 2 - 1
    with torch.inference_mode():
        _, t_plain, A = G(x, return_asm=True)
        G.set_t_refine(4, 1e-2)
        J, t, A2 = G(x, return_asm=True)
    assert G.config["t_refine"] == 4 and G.config["t_refine_eps"] == 0.01
    from dehaze.nets.unet import pad_to_multiple

    xp, _, _ = pad_to_multiple(x, G.multiple)
    with torch.inference_mode():  # the filter runs on the image at its own size, after the crop
        tp = G.t_min + (1 - G.t_min) * torch.sigmoid(_decoder_output(G, xp))[..., :30, :45]
        expected = refine_transmission((x + 1) / 2, tp, 4, 1e-2, G.t_min)
        assert torch.allclose(G.haze(x)[0], tp, atol=1e-6)  # haze(): the raw t, before the filter
    assert torch.allclose(t, expected, atol=1e-6) and not torch.allclose(t, t_plain, atol=1e-3)
    assert torch.allclose(A, A2)
    assert torch.allclose((J + 1) / 2, (((x + 1) / 2 - A) / t + A).clamp(0, 1), atol=1e-5)
    assert build_generator(G.config).t_refine == 4  # checkpoints rebuild with it
    assert "t_refine" not in G.set_t_refine(0).config
    with torch.inference_mode():  # tiny inputs: the window is wider than the padded image
        assert UNetGenerator(width=4, depth=3, head="asm", t_refine=16).eval()(torch.zeros(1, 3, 1, 1)).shape == (1, 3, 1, 1)
    with pytest.raises(ValueError, match="head='asm'"):
        UNetGenerator(width=4, depth=3, t_refine=4)
    with pytest.raises(ValueError, match="t_refine"):
        UNetGenerator(width=4, depth=3, head="asm", t_refine=2.5)
    with pytest.raises(ValueError, match="t_refine_eps"):
        UNetGenerator(width=4, depth=3, head="asm", t_refine=2, t_refine_eps=0)


def _decoder_output(G, xp):
    """The ASM head's pre-sigmoid t map, by running the encoder and decoder as ``forward`` does."""
    skips, y = [], xp
    for layer in G.down:
        y = layer(y)
        skips.append(y)
    skips.pop()
    for j, layer in enumerate(G.up):
        if j > 0:
            y = torch.cat([y, skips.pop()], dim=1)
        y = layer(y)
    return y
