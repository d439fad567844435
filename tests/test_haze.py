"""Haze synthesis: scattering-model invariants, depth priors, sampler ranges and determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dehaze.errors import ConfigError, InputError
from dehaze.haze import (
    CASTS,
    DEPTH_PRIORS,
    HazeMixture,
    HazeSynthesizer,
    atmospheric_scattering,
    camera,
    color_attenuation_depth,
    guided_filter,
    haze_preset,
    planes_depth,
    ramp_depth,
    smooth_noise_depth,
    synthesize_haze,
    synthesize_pair,
    transmission,
)


@pytest.fixture
def photo() -> np.ndarray:
    """A small structured RGB image: bright unsaturated sky over a darker saturated ground."""
    rng = np.random.default_rng(0)
    img = np.empty((48, 64, 3), np.float32)
    img[:16] = [0.85, 0.88, 0.92]
    img[16:] = [0.2, 0.45, 0.1]
    img += rng.normal(0, 0.03, img.shape).astype(np.float32)
    return np.clip(img, 0, 1)


def _roughness(d: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels (1/side for a linear ramp)."""
    return float(np.abs(np.diff(d, axis=0)).mean() + np.abs(np.diff(d, axis=1)).mean()) / 2


# ----------------------------------------------------------------------------- scattering model


def test_transmission_one_gives_clear(photo):
    hazy = atmospheric_scattering(photo, np.ones(photo.shape[:2], np.float32), [0.9, 0.8, 0.7])
    np.testing.assert_allclose(hazy, photo, atol=1e-6)
    hazy, meta = synthesize_haze(photo, 0, depth=np.zeros(photo.shape[:2], np.float32))
    np.testing.assert_allclose(hazy, photo, atol=1e-6)
    assert meta["mean_t"] == 1.0


def test_infinite_optical_depth_gives_airlight(photo):
    A = np.array([0.9, 0.85, 0.7], np.float32)
    hazy, meta = synthesize_haze(photo, 0, depth=np.full(photo.shape[:2], 100.0, np.float32), A=A, beta=1.0)
    np.testing.assert_allclose(hazy, np.broadcast_to(A, photo.shape), atol=1e-6)
    assert meta["A"] == pytest.approx(A.tolist(), abs=1e-4)
    assert meta["mean_t"] < 1e-6


def test_hazy_in_unit_range_and_monotone_in_beta(photo):
    depth = smooth_noise_depth(photo.shape[:2], 1) + 0.1
    prev_dist = -1.0
    for beta in [0.0, 0.3, 1.0, 2.0, 4.0]:
        hazy, _ = synthesize_haze(photo, 0, depth=depth, A=0.95, beta=beta)
        assert hazy.min() >= 0.0 and hazy.max() <= 1.0
        dist = np.abs(hazy - photo).mean()
        assert dist >= prev_dist  # more scattering moves every pixel further from the clear image
        prev_dist = dist
    # and pixel-wise: the distance to A never grows with beta
    h1, _ = synthesize_haze(photo, 0, depth=depth, A=0.95, beta=0.5)
    h2, _ = synthesize_haze(photo, 0, depth=depth, A=0.95, beta=1.5)
    assert (np.abs(h2 - 0.95) <= np.abs(h1 - 0.95) + 1e-6).all()


def test_random_haze_in_unit_range_for_extreme_inputs():
    rng = np.random.default_rng(3)
    for value in (0.0, 1.0):
        img = np.full((32, 32, 3), value, np.float32)
        for _ in range(10):
            hazy, meta = synthesize_haze(img, rng, haze_preset("mixed"))
            assert hazy.dtype == np.float32 and hazy.min() >= 0 and hazy.max() <= 1
            assert 0 < meta["mean_t"] <= 1


def test_transmission_values():
    np.testing.assert_allclose(
        transmission(np.array([0.0, 1.0, 2.0]), 0.5), np.exp([0.0, -0.5, -1.0]), rtol=1e-6
    )


# ----------------------------------------------------------------------------- depth priors


@pytest.mark.parametrize("shape", [(40, 60), (61, 33), (256, 256)])
def test_image_free_priors_shape_range_smoothness(shape):
    white = np.random.default_rng(0).random(shape, dtype=np.float32)
    for fn in (smooth_noise_depth, ramp_depth, planes_depth):
        d = fn(shape, 5)
        assert d.shape == shape and d.dtype == np.float32
        assert d.min() >= 0.0 and d.max() <= 1.0
        assert d.max() - d.min() > 0.2, fn.__name__  # not a flat map
        # smooth: neighbours differ far less than in white noise (about 1/3 there)
        assert _roughness(d) < 0.1 * _roughness(white), fn.__name__


def test_noise_prior_spans_unit_range_and_depends_on_seed():
    a, b = smooth_noise_depth((50, 70), 1), smooth_noise_depth((50, 70), 2)
    assert a.min() == 0.0 and a.max() == 1.0
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, smooth_noise_depth((50, 70), 1))


def test_ramp_grows_upwards():
    for seed in range(20):
        d = ramp_depth((64, 48), seed)
        assert (np.diff(d, axis=0) <= 1e-6).all(), seed  # every column deeper going up
        assert d[:8].mean() > d[-8:].mean(), seed


def test_ramp_horizon_and_tilt():
    # horizon in the middle and level: upper half is sky (depth 1), the bottom row is the nearest
    d = ramp_depth((40, 40), 0, horizon=(0.5, 0.5), tilt=(0.0, 0.0), curvature=(0.2, 0.2))
    assert (d[:20] == 1.0).all() and d[-1].max() < 0.05
    # tilted horizon: sky reaches lower on the right side than on the left
    d = ramp_depth((40, 40), 0, horizon=(0.5, 0.5), tilt=(0.4, 0.4), curvature=(0.2, 0.2))
    assert (d[:, -1] == 1.0).sum() > (d[:, 0] == 1.0).sum()


def test_planes_prior_is_piecewise():
    d = planes_depth((64, 64), 4, planes=(4, 4), softness=0.0)
    # a handful of planes: most of the gradient is constant within cells, with steps between them
    gy = np.diff(d, axis=0)
    assert (np.abs(np.diff(gy, axis=0)) < 1e-4).mean() > 0.8


def test_color_attenuation_prior_far_where_bright_and_unsaturated(photo):
    d = color_attenuation_depth(photo, 0)
    assert d.shape == photo.shape[:2] and d.dtype == np.float32
    assert d.min() >= 0 and d.max() <= 1
    assert d[:12].mean() > d[24:].mean() + 0.3  # bright grey sky farther than green ground
    # edge-aligned: the depth changes fastest at the sky/ground border (row 16)
    rows = np.abs(np.diff(d.mean(1)))
    assert 12 <= int(rows.argmax()) <= 19
    # smoothed: flat within each region although the photo's pixel noise (std 0.03) is there
    noise_rel = photo[24:].mean(-1).std() / (photo[:12].mean() - photo[24:].mean())
    assert d[:12].std() < 0.5 * noise_rel and d[24:].std() < 0.5 * noise_rel


def test_guided_filter_keeps_edges_and_smooths_noise():
    guide = np.zeros((32, 32), np.float32)
    guide[:, 16:] = 1.0
    noisy = guide + np.random.default_rng(0).normal(0, 0.1, guide.shape).astype(np.float32)
    out = guided_filter(guide, noisy, 3, eps=1e-2)
    assert abs(out[:, :14].mean()) < 0.05 and abs(out[:, 18:].mean() - 1) < 0.05
    assert out[:, :14].std() < 0.5 * noisy[:, :14].std()
    with pytest.raises(ValueError, match="guide.s size"):
        guided_filter(guide, noisy[:10], 3)


def test_every_prior_usable_by_name(photo):
    for name in DEPTH_PRIORS:
        hazy, meta = synthesize_haze(photo, 0, haze_preset("indoor"), prior=name)
        assert meta["prior"].split("+")[0] == name
        assert hazy.shape == photo.shape


# ----------------------------------------------------------------------------- sampler


def test_synthesize_is_deterministic_per_seed(photo):
    a, ma = synthesize_haze(photo, 7, haze_preset("mixed"))
    b, mb = synthesize_haze(photo, 7, haze_preset("mixed"))
    c, _ = synthesize_haze(photo, 8, haze_preset("mixed"))
    np.testing.assert_array_equal(a, b)
    assert ma == mb
    assert not np.array_equal(a, c)


def test_meta_within_preset_ranges(photo):
    rng = np.random.default_rng(0)
    for name in ("indoor", "outdoor"):
        s = haze_preset(name)
        for _ in range(30):
            _, m = synthesize_haze(photo, rng, s)
            lo = s.A[0] * (1 - s.A_tint) - 1e-4
            assert all(lo <= a <= 1.0 for a in m["A"])
            if m["beta_variation"] == 0:
                assert (
                    s.beta[0] * 0.999 <= m["beta"]
                    or m["beta"] * m["depth_far"] >= s.max_optical_depth * 0.999
                )
                assert m["beta"] <= s.beta[1] * 1.001
                assert m["beta"] * m["depth_far"] <= s.max_optical_depth * 1.001
            assert s.depth_far[0] * 0.999 <= m["depth_far"] <= s.depth_far[1] * 1.001


def test_transmission_distribution_covers_thin_to_dense(photo):
    """The mixed sampler must give dense haze (t ~ 0.05) as well as thin haze (t ~ 0.95)."""
    rng = np.random.default_rng(0)
    ts, means = [], []
    for _ in range(200):
        _, m = synthesize_haze(photo, rng, haze_preset("mixed"), return_transmission=True)
        ts.append(m["transmission"].ravel()[::7])
        means.append(m["mean_t"])
    t = np.concatenate(ts)
    assert np.percentile(t, 1) < 0.1 and np.percentile(t, 99) > 0.9
    assert 0.4 < np.mean(means) < 0.7
    assert np.percentile(means, 5) < 0.3 and np.percentile(means, 95) > 0.75  # whole images thin or dense


def test_presets_contain_reside_ranges():
    indoor, outdoor = haze_preset("indoor"), haze_preset("outdoor")
    assert indoor.A[0] <= 0.7 and indoor.A[1] >= 1.0 and indoor.beta[0] <= 0.6 and indoor.beta[1] >= 1.8
    assert outdoor.A[0] <= 0.8 and outdoor.A[1] >= 1.0 and outdoor.beta[0] <= 0.04 and outdoor.beta[1] >= 0.2
    assert isinstance(haze_preset("mixed"), HazeMixture)
    assert HazeSynthesizer.preset("indoor") is indoor
    with pytest.raises(ConfigError, match="unknown haze preset"):
        haze_preset("foggy")


def test_nonuniform_haze_varies_beta():
    # depth_near = 1 makes the depth constant (= depth_far), so t varies only where beta does
    flat = np.full((64, 64, 3), 0.3, np.float32)
    s = HazeSynthesizer(depth_near=(1.0, 1.0), nonuniform_prob=0.0)
    _, m = synthesize_haze(flat, 0, s, return_transmission=True)
    assert m["beta_variation"] == 0 and np.ptp(m["transmission"]) < 1e-6
    s = HazeSynthesizer(depth_near=(1.0, 1.0), nonuniform_prob=1.0, nonuniform_strength=(0.5, 0.5))
    _, m = synthesize_haze(flat, 0, s, return_transmission=True)
    t = m["transmission"]
    assert m["beta_variation"] == 0.5 and np.ptp(t) > 0.05
    assert np.abs(np.diff(t, axis=1)).max() < 0.05  # smoothly, not pixel noise


def test_from_dict():
    s = HazeSynthesizer.from_dict({"preset": "outdoor", "beta": [0.02, 0.3], "nonuniform_prob": 0.5})
    assert s.beta == (0.02, 0.3) and s.A == haze_preset("outdoor").A and s.nonuniform_prob == 0.5
    assert HazeSynthesizer.from_dict({}) == haze_preset("indoor") == HazeSynthesizer()
    with pytest.raises(ConfigError, match="unknown haze setting.*betta"):
        HazeSynthesizer.from_dict({"betta": [0.1, 0.2]})
    with pytest.raises(ConfigError, match="beta"):
        HazeSynthesizer.from_dict({"beta": [0.3, 0.1]})


def test_config_validation():
    with pytest.raises(ConfigError, match="beta"):
        HazeSynthesizer(beta=(2.0, 1.0))
    with pytest.raises(ConfigError, match="unknown: fog"):
        HazeSynthesizer(priors={"fog": 1.0})
    with pytest.raises(ConfigError, match="probability"):
        HazeSynthesizer(tint_prob=1.5)
    with pytest.raises(ConfigError, match="within"):
        HazeSynthesizer(A=(0.5, 1.2))
    with pytest.raises(ConfigError, match="unknown depth prior"):
        synthesize_haze(np.zeros((8, 8, 3), np.float32), 0, prior="fog")


def test_input_checks():
    with pytest.raises(ValueError, match="HxWx3"):
        synthesize_haze(np.zeros((8, 8), np.float32), 0)
    with pytest.raises(ValueError, match="3xHxW"):
        synthesize_haze(torch.zeros(1, 3, 8, 8), 0)
    with pytest.raises(InputError, match="too small"):
        synthesize_haze(np.zeros((1, 8, 3), np.float32), 0)
    with pytest.raises(ValueError, match="does not match"):
        synthesize_haze(np.zeros((8, 8, 3), np.float32), 0, depth=np.zeros((4, 4), np.float32))


def test_tensor_and_uint8_inputs(photo):
    x = torch.from_numpy(photo).permute(2, 0, 1).contiguous()
    hazy_t, meta_t = synthesize_haze(x, 3, haze_preset("outdoor"))
    hazy_a, meta_a = synthesize_haze(photo, 3, haze_preset("outdoor"))
    assert isinstance(hazy_t, torch.Tensor) and hazy_t.shape == x.shape and hazy_t.dtype == torch.float32
    np.testing.assert_allclose(hazy_t.permute(1, 2, 0).numpy(), hazy_a, atol=1e-6)
    assert meta_t == meta_a
    u8 = (photo * 255).round().astype(np.uint8)
    hazy_u, _ = synthesize_haze(u8, 3, haze_preset("outdoor"))
    assert hazy_u.dtype == np.float32 and np.abs(hazy_u - hazy_a).max() < 0.02


def test_synthesizer_callable_and_to_dict(photo):
    s = haze_preset("indoor")
    a, _ = s(photo, 1)
    b, _ = synthesize_haze(photo, 1, s)
    np.testing.assert_array_equal(a, b)
    d = s.to_dict()
    assert d["beta"] == (0.6, 1.8) and HazeSynthesizer(**d) == s


# ----------------------------------------------------------------------------- scene cue and mixtures


def test_mixture_odds_follow_the_weights():
    indoor, outdoor = haze_preset("indoor"), haze_preset("outdoor")
    mix = HazeMixture((indoor, outdoor), weights=(1.0, 0.5))
    rng = np.random.default_rng(0)
    share_outdoor = np.mean([mix.pick(rng) is outdoor for _ in range(3000)])
    assert share_outdoor == pytest.approx(1 / 3, abs=0.03)
    assert np.mean([HazeMixture((indoor, outdoor)).pick(rng) is outdoor for _ in range(3000)]) == pytest.approx(
        0.5, abs=0.03)  # equal odds without weights
    assert mix.to_dict()["weights"] == (1.0, 0.5)
    for bad in [(1.0,), (-1.0, 2.0), (0.0, 0.0)]:
        with pytest.raises(ConfigError, match="weights"):
            HazeMixture((indoor, outdoor), weights=bad)


# ----------------------------------------------------------------------------- real-world haze options


def _flat_scene(seed=0, size=48):
    rng = np.random.default_rng(seed)
    return (0.2 + 0.6 * rng.random((size, size, 3))).astype(np.float32)


def test_options_off_keep_the_old_random_stream():
    """New settings at their defaults draw nothing: old configs give bit-identical haze."""
    J = _flat_scene()
    a, meta_a = synthesize_haze(J, 3, HazeSynthesizer())
    b, meta_b = synthesize_haze(J, 3, HazeSynthesizer(casts={"sand": 1.0}, jpeg_quality=(50, 60)))
    assert np.array_equal(a, b) and meta_a["cast"] == "grey" and not meta_a["linear"]
    assert meta_a["noise"] == 0 and meta_a["jpeg_quality"] == 0


@pytest.mark.parametrize("cast", ["sand", "smog", "mist"])
def test_cast_moves_airlight_toward_its_colour(cast):
    s = HazeSynthesizer(cast_prob=1.0, cast_strength=(1.0, 1.0), casts={cast: 1.0}, A_tint=0.0, A=(0.9, 0.9))
    _, meta = synthesize_haze(_flat_scene(), 0, s)
    A = np.array(meta["A"])
    assert meta["cast"] == cast
    assert np.allclose(A / A.max(), np.array(CASTS[cast]) / max(CASTS[cast]), atol=1e-3)
    if cast in ("sand", "smog"):
        assert A[0] > A[1] > A[2]  # yellow-brown: red over green over blue
    else:
        assert A[2] > A[1] > A[0]  # bluish mist


def test_patch_scale_makes_haze_patchier():
    """More cells in the non-uniform field: beta changes over shorter distances (NH-HAZE's patches)."""
    def roughness(cells):
        s = HazeSynthesizer(depth_near=(1.0, 1.0), nonuniform_prob=1.0, nonuniform_strength=(1.0, 1.0),
                            nonuniform_cells=(cells, cells), align_edges=False)
        out = []
        for seed in range(6):
            _, meta = synthesize_haze(np.full((96, 96, 3), 0.3, np.float32), seed, s, return_transmission=True)
            t = meta["transmission"]
            out.append(np.abs(np.diff(t, axis=1)).mean() / max(t.std(), 1e-6))
        return np.mean(out)

    assert roughness(6.0) > 1.5 * roughness(1.5)


def test_linear_haze_is_denser_in_the_shadows_and_t_explains_it():
    J = np.zeros((16, 16, 3), np.float32)
    J[:, :8] = 0.1  # a shadow and a bright wall
    J[:, 8:] = 0.7
    A, d = 0.9, np.ones((16, 16), np.float32)
    srgb, _ = synthesize_haze(J, 0, HazeSynthesizer(), depth=d, A=A, beta=0.7)
    lin, meta = synthesize_haze(J, 0, HazeSynthesizer(linear_prob=1.0), depth=d, A=A, beta=0.7,
                                return_transmission=True)
    assert meta["linear"]
    # in linear light the airlight's share lifts a dark pixel further than the sRGB model does
    assert lin[0, 0, 0] > srgb[0, 0, 0] + 0.05
    # and the returned transmission reproduces the hazy pixels through the sRGB model
    t = meta["transmission"][..., None]
    assert np.abs(J * t + A * (1 - t) - lin).max() < 2e-3


def test_camera_noise_is_heteroscedastic_and_jpeg_blocks():
    x = np.concatenate([np.full((64, 64, 3), 0.1, np.float32), np.full((64, 64, 3), 0.9, np.float32)], 1)
    y = camera(x, 0, noise=0.03)
    dark, bright = (y - x)[:, :64].std(), (y - x)[:, 64:].std()
    assert 0.02 < dark and bright < dark  # the sRGB curve: flat dark regions get the most visible noise
    ramp = np.tile(np.linspace(0.2, 0.8, 64, dtype=np.float32)[None, :, None], (64, 1, 3))
    err_lo = np.abs(camera(ramp, None, jpeg_quality=10) - ramp).mean()
    err_hi = np.abs(camera(ramp, None, jpeg_quality=95) - ramp).mean()
    assert err_lo > 2 * err_hi
    with pytest.raises(ValueError, match="jpeg_quality"):
        camera(ramp, None, jpeg_quality=0)


def test_camera_step_touches_the_hazy_photo_only():
    J = _flat_scene()
    s = HazeSynthesizer(noise_prob=1.0, noise=(0.02, 0.02), jpeg_prob=1.0, jpeg_quality=(40, 40), exposure=(1.0, 1.0))
    clear, hazy, meta = synthesize_pair(J, 0, s, return_transmission=True)
    assert np.array_equal(clear, J) and meta["noise"] == 0.02 and meta["jpeg_quality"] == 40
    # the transmission and airlight are those of the haze: the camera changes neither
    _, plain, plain_meta = synthesize_pair(J, 0, HazeSynthesizer(), return_transmission=True)
    assert np.array_equal(meta["transmission"], plain_meta["transmission"]) and meta["A"] == plain_meta["A"]
    assert np.abs(hazy - plain).mean() > 0.005
    assert hazy.dtype == np.float32 and 0 <= hazy.min() and hazy.max() <= 1


def test_dense_preset_reaches_beyond_reside():
    s = haze_preset("dense")
    ts = [synthesize_haze(_flat_scene(i, 64), i, s)[1]["mean_t"] for i in range(12)]
    assert np.median(ts) < 0.35  # RESIDE outdoor's mean t is 0.66 (the outdoor preset's docs)
    assert HazeSynthesizer.from_dict({"preset": "dense"}).max_optical_depth == 4.0


@pytest.mark.parametrize("bad", [{"cast_prob": 2.0}, {"casts": {"purple": 1.0}}, {"cast_strength": [0.5, 1.5]},
                                 {"jpeg_quality": [0, 50]}, {"nonuniform_cells": [0.1, 2]}, {"noise": [0.0, 0.1]},
                                 {"linear_prob": -0.1}])
def test_bad_real_world_settings_name_themselves(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        HazeSynthesizer.from_dict({"preset": "outdoor", **bad})
