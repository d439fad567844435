import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dehaze.classical import DarkChannelPrior
from dehaze.errors import CheckpointError, ConfigError, DehazeError
from dehaze.export import export_onnx
from dehaze.inference import (
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
    Dehazer,
    default_model_path,
    feather_weights,
    get_method,
    identity,
    restore_photo,
    tile_spans,
    tiling_error,
)
from dehaze.io import Photo
from dehaze.nets import UNetGenerator


def psnr(a, b):
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def save_checkpoint(path: Path, G: UNetGenerator, **old_keys) -> Path:
    """A checkpoint of ``G``; ``old_keys`` (t_refine, t_refine_eps) go into G_config as in older checkpoints."""
    state = G.state_dict()
    torch.save(
        {"G": state, "G_ema": state, "G_config": {**G.config, **old_keys}, "config": {}, "step": 0, "metrics": {}},
        path,
    )
    return path


def scene(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured clear image and its hazy version (haze thicker to the right and bottom)."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(
        rng.random((max(h // 16, 2), max(w // 16, 2), 3)).astype(np.float32),
        (w, h),
        interpolation=cv2.INTER_CUBIC,
    )
    detail = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 1.5)
    clear = np.clip(0.7 * base + 0.6 * (detail - 0.5), 0, 1)
    depth = (
        np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
        * np.linspace(0.3, 1, h, dtype=np.float32)[:, None, None]
    )
    t = np.exp(-1.5 * depth)
    return clear, (clear * t + 0.9 * (1 - t)).astype(np.float32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny U-Net trained for a few steps to dehaze `scene`: content-dependent, unlike random weights."""
    torch.manual_seed(0)
    G = UNetGenerator(width=8, depth=4)
    opt = torch.optim.Adam(G.parameters(), 2e-3)
    for step in range(60):
        clear, hazy = scene(64, 64, step)
        x = torch.from_numpy(hazy).permute(2, 0, 1)[None] * 2 - 1
        y = torch.from_numpy(clear).permute(2, 0, 1)[None] * 2 - 1
        loss = (G(x) - y).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    G.eval()
    return save_checkpoint(tmp_path_factory.mktemp("trained") / "trained.pt", G)


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    torch.manual_seed(1)
    d = tmp_path_factory.mktemp("onnx")
    ckpt = save_checkpoint(d / "tiny.pt", UNetGenerator(width=4, depth=3).eval())
    export_onnx(ckpt, d / "tiny.onnx")
    return d / "tiny.onnx", ckpt


@pytest.mark.parametrize(
    "size,tile,overlap,m",
    [
        (1000, 512, 32, 32),
        (1024, 512, 64, 32),
        (513, 512, 32, 32),
        (4096, 512, 64, 32),
        (300, 512, 32, 32),
        (2161, 512, 64, 8),
    ],
)
def test_tile_spans_cover_with_overlap(size, tile, overlap, m):
    spans = tile_spans(size, tile, overlap, m)
    assert spans[0][0] == 0 and spans[-1][1] == size
    assert all(stop - start <= tile for start, stop in spans)
    assert all(start % m == 0 for start, _ in spans)  # aligned with the network's stride grid
    assert all(a[1] - b[0] >= overlap for a, b in zip(spans, spans[1:]))
    if len(spans) > 1:  # no more tiles than needed
        blocks, tb, ob = -(-size // m), tile // m, -(-overlap // m)
        assert len(spans) == -(-(blocks - ob) // (tb - ob))


@pytest.mark.parametrize("overlap", [8, 32, 64, 96])
def test_feather_weights_sum_to_one_in_overlaps(overlap):
    spans = tile_spans(1000, 256, overlap, 8)
    total = np.zeros(1000)
    for i, (start, stop) in enumerate(spans):
        lo = spans[i - 1][1] - start if i else 0
        hi = stop - spans[i + 1][0] if i + 1 < len(spans) else 0
        w = feather_weights(stop - start, lo, hi)
        total[start:stop] += w
        if overlap >= 64 and i:
            assert w[0] == 0.0  # a tile's own edge, short of context, gets no weight
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


@pytest.mark.parametrize("h,w", [(1, 1), (5, 3), (37, 53), (64, 200), (100, 1)])
def test_odd_sizes_same_shape_in_range(onnx_model, h, w):
    dehazer = Dehazer(onnx_model[0])
    out = dehazer(np.random.default_rng(0).random((h, w, 3), dtype=np.float32))
    assert out.shape == (h, w, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_onnx_and_torch_backends_agree(onnx_model):
    path, ckpt = onnx_model
    ort_d, torch_d = Dehazer(path, tile=64, overlap=8), Dehazer(ckpt, tile=64, overlap=8)
    assert (ort_d.backend, torch_d.backend) == ("onnxruntime", "torch")
    assert ort_d.multiple == torch_d.multiple == 8
    assert ort_d.card["input"]["multiple"] == 8 and ort_d.name == "tiny"
    x = np.random.default_rng(0).random((150, 97, 3), dtype=np.float32)  # tiled, odd size
    np.testing.assert_allclose(ort_d(x), torch_d(x), atol=1e-4)


def test_cpu_provider_quietly(onnx_model, capfd):
    dehazer = Dehazer(onnx_model[0], device="auto", threads=1)
    dehazer(np.zeros((16, 16, 3), np.float32))
    if not torch.cuda.is_available():
        assert dehazer.providers == ["CPUExecutionProvider"]
    err = capfd.readouterr().err
    assert "onnxruntime" not in err and "CUDA" not in err  # no provider error spam
    assert dehazer.threads == 1
    with pytest.raises(ConfigError, match="device"):
        Dehazer(onnx_model[0], device="tpu")


def test_tiling_has_no_seams(trained):
    clear, hazy = scene(1024, 1024, 999)
    whole = Dehazer(trained, tile=0)(hazy)  # 1024x1024 fits untiled too
    tiled = Dehazer(trained, tile=512)(hazy)  # default overlap
    hard = Dehazer(trained, tile=512, overlap=0)(hazy)  # tiles butted together: seams
    assert psnr(whole, clear) > psnr(hazy, clear) + 3  # the network really changes the image
    assert abs(psnr(tiled, clear) - psnr(whole, clear)) < 1.0
    assert psnr(tiled, whole) > 45
    # the largest per-column difference (where a vertical seam would show) stays below ~6/255
    assert np.abs(tiled - whole).mean(axis=(0, 2)).max() < 0.025
    assert np.abs(hard - whole).mean(axis=(0, 2)).max() > 0.05  # a real seam is caught by this measure


def asm_model(tmp_path: Path, backend: str) -> Path:
    """A tiny ASM-head model (checkpoint or ONNX) whose t and airlight depend on the image content; its
    G_config has an older checkpoint's guided filter on t (radius 3, eps 0.01), which the Dehazer uses."""
    torch.manual_seed(2)
    G = UNetGenerator(width=4, depth=3, head="asm", upsample="bilinear")
    with torch.no_grad():
        G.train()(torch.rand(4, 3, 32, 32) * 2 - 1)
        G.airlight.weight.normal_(0, 0.5)  # A depends on the content
    ckpt = save_checkpoint(tmp_path / "asm.pt", G.eval(), t_refine=3, t_refine_eps=0.01)
    if backend == "torch":
        return ckpt
    export_onnx(ckpt, tmp_path / "asm.onnx", working_size=64)
    return tmp_path / "asm.onnx"


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_two_scale_equals_one_pass_on_a_photo_that_fits_the_working_size(tmp_path, backend):
    model = asm_model(tmp_path, backend)
    dh = Dehazer(model, working_size=64, protect=False)  # the plain inversion, as the torch graph does it
    assert dh.two_scale["working_size"] == 64 and dh.two_scale["radius"] == 3 and dh.accepts_integer
    assert dh.two_scale["eps"] == 0.01
    from dehaze.nets import GuidedUpsample, load_generator
    from dehaze.nets.unet import invert_scattering

    G, _ = load_generator(tmp_path / "asm.pt")
    hazy = scene(48, 61, 3)[1]
    with torch.inference_mode():  # one pass in torch: G's raw t -> GuidedUpsample -> inversion
        x = torch.from_numpy(hazy).permute(2, 0, 1)[None] * 2 - 1
        t, A = G.eval().haze(x)
        image = (x + 1) / 2
        one_pass = invert_scattering(image, GuidedUpsample(3, 0.01, G.t_min)(t, image, image), A)[0].permute(1, 2, 0)
        raw = (G(x)[0].permute(1, 2, 0) + 1) / 2
    assert np.abs(dh(hazy) - one_pass.numpy()).max() < 1e-4
    assert np.abs(dh(hazy) - raw.numpy()).max() > 1e-3  # the filter matters


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_clipping_protection_comes_from_the_card_and_can_be_turned_off(tmp_path, backend):
    import json

    from dehaze.twoscale import DEFAULT_PROTECTION, NO_PROTECTION

    model = asm_model(tmp_path, backend)
    dh, plain = Dehazer(model, working_size=64), Dehazer(model, working_size=64, protect=False)
    assert dh.protection == DEFAULT_PROTECTION and plain.protection == NO_PROTECTION
    hazy = scene(150, 230, 5)[1]
    hazy[:40] = np.clip(hazy[:40] * 0.3 + 0.75, 0, 1)  # a bright sky, above the airlight
    hazy[-30:, :50] *= 0.1  # deep shadows
    out, old = dh(hazy), plain(hazy)
    clipped = lambda x: ((x <= 1 / 255) | (x >= 254 / 255)).any(axis=2).mean()  # noqa: E731
    assert clipped(out) < clipped(old) and clipped(out) <= clipped(hazy) + 0.01
    haze = dh.estimate(hazy)
    assert haze.floor is not None and np.array_equal(dh.apply(hazy, haze), out)  # fit + apply, as HazeStream
    assert plain.estimate(hazy).floor is None
    if backend == "onnx":  # a card from before the protection: the plain inversion
        card = json.loads(model.with_suffix(".json").read_text())
        del card["two_scale"]["protect"]
        model.with_suffix(".json").write_text(json.dumps(card))
        older = Dehazer(model, working_size=64)
        assert older.protection == NO_PROTECTION and np.array_equal(older(hazy), old)
        card["two_scale"]["protect"] = {"shadows": 7}
        model.with_suffix(".json").write_text(json.dumps(card))
        with pytest.raises(CheckpointError, match="protect"):
            Dehazer(model)


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_two_scale_runs_the_network_once_on_the_working_copy(tmp_path, backend):
    dh = Dehazer(asm_model(tmp_path, backend), working_size=64)
    seen = []
    run = dh._run
    dh._run = lambda batch, airlight: seen.append(batch.shape) or run(batch, airlight)
    hazy = scene(150, 230, 5)[1]
    out = dh(hazy)
    assert out.shape == hazy.shape and seen == [(1, 3, 48, 64)]  # the 42x64 working copy, padded to the multiple 8
    haze = dh.estimate(hazy)
    assert haze.working_size == (42, 64) and haze.size == (150, 230)


def test_two_scale_torch_and_onnx_agree_at_two_sizes(tmp_path):
    onnx_dh, torch_dh = Dehazer(asm_model(tmp_path, "onnx")), Dehazer(tmp_path / "asm.pt", working_size=64)
    for h, w in ((50, 40), (150, 230)):  # within the working size, and 3.6x beyond it
        hazy = scene(h, w, 7)[1]
        assert np.abs(onnx_dh(hazy) - torch_dh(hazy)).max() < 1e-4


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_strength(tmp_path, backend):
    dh = Dehazer(asm_model(tmp_path, backend), working_size=64)
    hazy = scene(90, 120, 4)[1]
    assert np.array_equal(dh(hazy, strength=0), hazy)  # 0: the photo itself
    full = dh(hazy)
    assert np.array_equal(dh(hazy, strength=1), full)
    half, more = dh(hazy, strength=0.5), dh(hazy, strength=1.5)
    gap = lambda x: np.abs(x - hazy).mean()  # noqa: E731
    assert 0 < gap(half) < gap(full) < gap(more)
    u8 = (hazy * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(dh(u8, strength=0), u8)
    for bad in (-0.1, 1.6, float("nan"), "x"):
        with pytest.raises(ValueError, match=r"strength must be .*\[0, 1.5\]"):
            dh(hazy, strength=bad)


def test_two_scale_integer_photos_match_float(tmp_path):
    dh = Dehazer(asm_model(tmp_path, "onnx"), working_size=64)
    hazy = scene(120, 200, 8)[1]
    for dtype, top in ((np.uint8, 255), (np.uint16, 65535)):
        q = (hazy * top + 0.5).astype(dtype)
        out = dh(q)
        assert out.dtype == dtype
        ref = dh(q.astype(np.float32) / top)
        assert np.abs(out.astype(np.float32) / top - ref).max() <= 1.0 / 255 + 1e-6


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_a_given_airlight_replaces_the_estimate(tmp_path, backend):
    model = asm_model(tmp_path, backend)
    small, big = scene(40, 56, 3)[1], scene(150, 230, 5)[1]
    dh = Dehazer(model, working_size=64)
    for hazy in (small, big):
        est = dh.estimate_airlight(hazy)
        assert np.allclose(dh(hazy, airlight=est), dh(hazy), atol=1e-5)
        other = dh(hazy, airlight=np.clip(est + 0.2, 0, 1))
        assert np.abs(other - dh(hazy)).mean() > 1e-3
    with pytest.raises(DehazeError, match="3 RGB values in \\[0, 1\\]"):
        dh(big, airlight=[1.2, 0.5, 0.5])
    with pytest.raises(DehazeError, match="3 RGB values"):
        dh(big, airlight=[0.5, 0.5])


def test_airlight_needs_an_asm_model(onnx_model):
    with pytest.raises(DehazeError, match="does not take an atmospheric light"):
        Dehazer(onnx_model[0])(scene(32, 32, 1)[1], airlight=[0.8, 0.8, 0.8])


def test_large_image_bounded_memory(onnx_model):
    # a 4096x2160 photo through tiles in a fresh process; VmHWM is its own peak RSS (ru_maxrss
    # would include the parent's memory at fork time on Linux)
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux /proc to read the peak RSS")
    code = textwrap.dedent(f"""
        import numpy as np
        from dehaze.inference import Dehazer
        d = Dehazer({str(onnx_model[0])!r}, tile=512)
        out = d(np.random.default_rng(0).random((2160, 4096, 3), dtype=np.float32))
        assert out.shape == (2160, 4096, 3)
        print(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1])
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    peak_mb = int(res.stdout.split()[-1]) / 1024
    assert peak_mb < 1500, f"peak RSS {peak_mb:.0f} MB"


def test_default_model_path(monkeypatch, tmp_path):
    monkeypatch.setenv("DEHAZE_MODEL", str(tmp_path / "nope.onnx"))
    with pytest.raises(CheckpointError, match="DEHAZE_MODEL"):
        default_model_path()
    (tmp_path / "m.onnx").write_bytes(b"x")
    monkeypatch.setenv("DEHAZE_MODEL", str(tmp_path / "m.onnx"))
    assert default_model_path() == tmp_path / "m.onnx"
    monkeypatch.delenv("DEHAZE_MODEL")
    assert default_model_path.__module__ == "dehaze.inference"
    try:
        path = default_model_path()
        assert path.name == "dehaze-default.onnx" and path.parent.name == "models"
    except CheckpointError as exc:
        assert "dehaze-default.onnx" in str(exc) and "dehaze export" in str(exc)


def test_bad_model_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        Dehazer(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="cannot load"):
        Dehazer(bad)


def test_dehazer_keeps_the_one_tiling_rule(onnx_model):
    path = onnx_model[0]
    assert Dehazer(path).tile == DEFAULT_TILE == 512  # the one default tile side
    refused = {
        (10, None): "the tile must be 0 (no tiling) or at least 64, got 10",
        (-64, None): "the tile must be 0 (no tiling) or at least 64, got -64",
        (200, 60): "the overlap must be at most a quarter of the tile: 60 with tile 200",  # was accepted
        (512, -1): "the overlap must be 0 or more, got -1",
    }
    for (tile, overlap), message in refused.items():
        with pytest.raises(ConfigError) as exc:
            Dehazer(path, tile=tile, overlap=overlap)
        assert str(exc.value) == message == tiling_error(tile, overlap if overlap is not None else tile // 4)
    for tile, overlap in ((64, 16), (65, None), (0, 500), (200, 50)):  # what the rule accepts runs
        d = Dehazer(path, tile=tile, overlap=overlap)
        assert d.overlap == (min(DEFAULT_OVERLAP, tile // 4) if overlap is None else overlap)
        assert d(np.full((150, 140, 3), 0.5, np.float32)).shape == (150, 140, 3)


def test_get_method(onnx_model):
    assert get_method("hazy") is identity
    assert isinstance(get_method("dcp"), DarkChannelPrior)
    assert isinstance(get_method("model", onnx_model[0]), Dehazer)
    assert isinstance(get_method(str(onnx_model[0])), Dehazer)  # a model file by path
    with pytest.raises(ConfigError, match="unknown method"):
        get_method("magic")


def test_restore_photo_keeps_alpha_gray_depth_size():
    rgb = np.random.default_rng(0).random((9, 7, 3), dtype=np.float32)
    gray_rgb = np.repeat(rgb[..., :1], 3, axis=2)
    alpha = np.arange(63, dtype=np.uint16).reshape(9, 7) * 1000
    photo = Photo(gray_rgb, alpha, 16, True, "TIFF", b"icc")
    out = restore_photo(photo, lambda x: x * np.array([1.0, 0.5, 0.0], np.float32))  # colour cast
    assert out.grayscale and out.bit_depth == 16 and out.format == "TIFF" and out.icc_profile == b"icc"
    assert out.alpha is alpha
    assert np.array_equal(out.rgb[..., 0], out.rgb[..., 1])  # still grey-looking
    with pytest.raises(ValueError, match="shape"):
        restore_photo(photo, lambda x: x[:4])
