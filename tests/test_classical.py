from pathlib import Path

import numpy as np
import pytest

from dehaze.classical import (
    DarkChannelPrior,
    dark_channel,
    dehaze_dcp,
    estimate_atmospheric_light,
    estimate_transmission,
    guided_filter,
)

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"


def synthetic_scene(h=96, w=128, seed=0):
    """A textured haze-free scene with dark pixels in every patch, and its hazy version."""
    rng = np.random.default_rng(seed)
    J = rng.random((h, w, 3)).astype(np.float32) * 0.8
    J[::6, ::6] = 0.0  # the dark channel prior holds: every 15x15 patch has a dark pixel
    depth = np.linspace(0.2, 2.0, w, dtype=np.float32)[None, :].repeat(h, 0)
    t = np.exp(-1.0 * depth)[..., None]
    A = np.array([0.9, 0.92, 0.95], np.float32)
    hazy = J * t + A * (1 - t)
    return J, hazy, A, t[..., 0]


def test_dark_channel_is_patch_minimum():
    rgb = np.ones((9, 9, 3), np.float32)
    rgb[4, 4, 1] = 0.1
    dark = dark_channel(rgb, patch=3)
    assert dark[4, 4] == pytest.approx(0.1) and dark[3, 5] == pytest.approx(0.1)
    assert dark[0, 0] == 1.0 and dark[6, 6] == 1.0
    ref = np.array(
        [[rgb[max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2].min() for j in range(9)] for i in range(9)]
    )
    np.testing.assert_allclose(dark, ref)


def test_atmospheric_light_is_brightest_candidate():
    rgb = np.full((50, 50, 3), 0.2, np.float32)
    rgb[10, 10] = [0.95, 0.9, 0.85]  # a bright hazy pixel
    rgb[40, 40] = [0.9, 0.8, 0.8]  # bright too, but less intense
    dark = dark_channel(rgb, 1)
    A = estimate_atmospheric_light(rgb, dark, top=0.001)  # 2 candidates of 2500
    np.testing.assert_allclose(A, [0.95, 0.9, 0.85])


def test_guided_filter_properties():
    rng = np.random.default_rng(1)
    g = rng.random((40, 50)).astype(np.float32)
    const = np.full_like(g, 0.3)
    np.testing.assert_allclose(guided_filter(g, const, radius=5, eps=1e-3), 0.3, atol=1e-5)
    # tiny eps: the filter follows the guide (edge preserving)
    np.testing.assert_allclose(guided_filter(g, g, radius=3, eps=1e-8), g, atol=1e-3)
    # huge eps: it becomes a box blur, strongly smoothing noise
    assert guided_filter(g, g, radius=3, eps=1e3).std() < 0.2 * g.std()
    three = guided_filter(g, np.dstack([g, const, g]), radius=3, eps=1e-3)
    assert three.shape == (40, 50, 3)
    np.testing.assert_allclose(three[..., 0], guided_filter(g, g, radius=3, eps=1e-3), atol=1e-6)
    with pytest.raises(ValueError, match="guide"):
        guided_filter(np.zeros((4, 4, 3)), np.zeros((4, 4)))


def test_dcp_recovers_synthetic_haze():
    J, hazy, A, t = synthetic_scene()
    dark = dark_channel(hazy, 15)
    A_hat = estimate_atmospheric_light(hazy, dark)
    assert np.abs(A_hat - A).max() < 0.1
    t_hat = estimate_transmission(hazy, A_hat)
    assert np.corrcoef(t_hat.ravel(), t.ravel())[0, 1] > 0.9
    out = dehaze_dcp(hazy)
    assert out.shape == hazy.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    mse_hazy = np.mean((hazy - J) ** 2)
    mse_out = np.mean((out - J) ** 2)
    assert mse_out < 0.5 * mse_hazy


def test_dcp_input_checks_and_class():
    with pytest.raises(ValueError, match="HxWx3"):
        dehaze_dcp(np.zeros((8, 8)))
    x = synthetic_scene(32, 40)[1]
    np.testing.assert_array_equal(DarkChannelPrior(patch=7, radius=8)(x), dehaze_dcp(x, patch=7, radius=8))


def test_dcp_on_sots_indoor_beats_hazy():
    root = SHARED / "data" / "sots-dev" / "indoor"
    if not root.is_dir():
        pytest.skip(f"shared data not found at {root}")
    from dehaze.io import read_photo

    hazy = read_photo(root / "hazy" / "1400_5.png").rgb
    clear = read_photo(root / "clear" / "1400.png").rgb

    def psnr(x):
        return 10 * np.log10(1 / np.mean((x - clear) ** 2))

    assert psnr(dehaze_dcp(hazy)) > psnr(hazy) + 3
