import pytest
import torch

from dehaze.errors import CheckpointError
from dehaze.nets import UNetGenerator, build_generator, count_parameters, load_generator
from dehaze.nets.unet import GuidedUpsample, guided_upsample, invert_scattering


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


def test_guided_filter_on_t_follows_image_edges_and_drops_copied_texture():
    """A t whose edge is 4 px off the image's edge and that carries the image's texture comes out with
    its edge on the image's and flat within each side (He et al.'s guided filter: guided_upsample at
    equal sizes)."""
    torch.manual_seed(0)
    image = torch.full((1, 3, 48, 64), 0.3)
    image[..., 32:] = 0.8  # a vertical edge at x = 32
    image = image + 0.01 * torch.randn(1, 1, 48, 64)  # fine texture, shared by the channels
    t = torch.full((1, 1, 48, 64), 0.4)
    t[..., 36:] = 0.9  # the network's edge is 4 px to the right
    t = t + 0.05 * torch.randn(1, 1, 48, 64)  # and its own noise
    r = guided_upsample(t, image, image, radius=6, eps=1e-3, t_min=0.05)
    assert torch.equal(GuidedUpsample(6, 1e-3, 0.05)(t, image, image), r)  # the module is the function
    assert r.shape == t.shape and r.min() >= 0.05 and r.max() <= 1.0
    # its biggest step moves to the image's edge, and between the two edges it rises towards the bright side
    assert int(r.mean(dim=(0, 1, 2)).diff().argmax()) == 31 and int(t.mean(dim=(0, 1, 2)).diff().argmax()) == 35
    assert r[..., 32:36].mean() > t[..., 32:36].mean() + 0.15
    # within each flat side the noise is mostly gone
    assert r[..., 8:24].std() < 0.3 * t[..., 8:24].std()
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    GuidedUpsample(2)(torch.rand(2, 1, 16, 16), x, x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    img = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="image"):
        guided_upsample(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), img, 2)
    with pytest.raises(ValueError, match="t: expected"):
        guided_upsample(torch.rand(1, 1, 8, 9), img, img, 2)
    with pytest.raises(ValueError, match="radius"):
        guided_upsample(torch.rand(1, 1, 8, 8), img, img, -1)
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="radius must be a whole number"):
            GuidedUpsample(bad)
    with pytest.raises(ValueError, match="eps must be positive"):
        GuidedUpsample(2, eps=0)
    with torch.inference_mode():  # tiny inputs: the window is wider than the image
        one = torch.zeros(1, 3, 1, 1)
        assert GuidedUpsample(16, 0.01)(torch.full((1, 1, 1, 1), 0.5), one, one).shape == (1, 1, 1, 1)


def test_asm_forward_inverts_with_the_raw_t_and_composes_with_the_guided_filter():
    torch.manual_seed(1)
    G = UNetGenerator(width=4, depth=3, head="asm").eval()
    x = torch.rand(2, 3, 30, 45) * 2 - 1
    from dehaze.nets.unet import pad_to_multiple

    xp, _, _ = pad_to_multiple(x, G.multiple)
    with torch.inference_mode():
        J, t, A = G(x, return_asm=True)
        tp = G.t_min + (1 - G.t_min) * torch.sigmoid(_decoder_output(G, xp))[..., :30, :45]
        raw, A2 = G.haze(x)
        image = (x + 1) / 2
        refined = GuidedUpsample(4, 1e-2, G.t_min)(raw, image, image)
    assert torch.allclose(t, tp, atol=1e-6) and torch.allclose(raw, tp, atol=1e-6)  # no filter inside G
    assert torch.allclose(A, A2)
    assert torch.allclose((J + 1) / 2, invert_scattering(image, t, A), atol=1e-6)
    assert torch.allclose((J + 1) / 2, (((x + 1) / 2 - A) / t + A).clamp(0, 1), atol=1e-5)
    assert not torch.allclose(refined, raw, atol=1e-3)
    with pytest.raises(TypeError, match="t_refine"):
        UNetGenerator(width=4, depth=3, head="asm", t_refine=4)  # the filter is GuidedUpsample's now


def test_older_configs_with_t_refine_still_load_and_hand_the_settings_back(tmp_path):
    """Checkpoints (and ONNX cards) from before GuidedUpsample have t_refine / t_refine_eps in their
    G_config: they change no weights, so they load; the settings come back in meta["weightless"]."""
    from dehaze.nets import weight_layout

    torch.manual_seed(2)
    G = UNetGenerator(width=4, depth=3, head="asm").eval()
    old = {**G.config, "t_refine": 24, "t_refine_eps": 0.01}
    assert build_generator(old).config == G.config == weight_layout(old)
    torch.save({"G": G.state_dict(), "G_config": old, "step": 7}, tmp_path / "old.pt")
    loaded, meta = load_generator(tmp_path / "old.pt")
    assert meta["weightless"] == {"t_refine": 24, "t_refine_eps": 0.01} and meta["G_config"] == old
    x = torch.rand(1, 3, 20, 28) * 2 - 1
    with torch.inference_mode():
        assert torch.equal(loaded(x), G(x))
    torch.save({"G": G.state_dict(), "G_config": G.config}, tmp_path / "new.pt")
    assert load_generator(tmp_path / "new.pt")[1]["weightless"] == {}


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
