"""Two-scale dehazing's full-size half (dehaze.twoscale) and its torch twin (nets.unet.guided_upsample)."""

import numpy as np
import pytest
import torch

from dehaze.nets.unet import GuidedUpsample, guided_upsample
from dehaze.twoscale import (
    DEFAULT_PROTECTION,
    NO_PROTECTION,
    Protection,
    apply_haze,
    boundary_transmission,
    check_strength,
    fit_haze,
    grey,
    transmission,
    two_scale_settings,
    working_copy,
)


def photo(h, w, seed=0):
    rng = np.random.default_rng(seed)
    base = np.kron(rng.random((h // 8 + 1, w // 8 + 1, 3), dtype=np.float32), np.ones((8, 8, 1), np.float32))
    return np.clip(base[:h, :w] * 0.7 + rng.random((h, w, 3), dtype=np.float32) * 0.3, 0, 1)


def haze_for(image, side=48, radius=3, eps=0.01):
    small = working_copy(image, side)
    yy = np.linspace(0.3, 0.9, small.shape[0], dtype=np.float32)[:, None]
    t = np.clip(yy + 0.1 * small.mean(axis=2), 0.05, 1).astype(np.float32)
    return fit_haze(small, t, [0.85, 0.88, 0.9], image.shape[:2], radius, eps)


def test_strips_give_the_result_of_one_pass():
    image = photo(131, 97, 1)
    haze = haze_for(image)
    whole = apply_haze(image, haze, rows=10_000)
    for rows in (1, 7, 64):
        assert np.array_equal(apply_haze(image, haze, rows=rows), whole)
    u8 = (image * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(apply_haze(u8, haze, rows=5), apply_haze(u8, haze, rows=1000))
    out = u8.copy()
    assert apply_haze(out, haze, out=out, rows=9) is out  # in place, strip by strip
    assert np.array_equal(out, apply_haze(u8, haze))


def test_numpy_and_torch_guided_upsampling_agree():
    image = photo(150, 110, 2)
    haze = haze_for(image, side=50, radius=3, eps=0.01)
    small = working_copy(image, 50)
    yy = np.linspace(0.3, 0.9, small.shape[0], dtype=np.float32)[:, None]
    t = np.clip(yy + 0.1 * small.mean(axis=2), 0.05, 1).astype(np.float32)
    tt = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]  # noqa: E731
    t_full = GuidedUpsample(3, 0.01, 0.05)(torch.from_numpy(t)[None, None], tt(small), tt(image))
    assert torch.equal(t_full, guided_upsample(torch.from_numpy(t)[None, None], tt(small), tt(image), 3, 0.01, 0.05))
    A = haze.airlight
    ref = np.clip((image - A) / t_full[0, 0].numpy()[..., None] + A, 0, 1)
    assert np.abs(apply_haze(image, haze) - ref).max() < 1e-4
    # at equal sizes it is the guided filter on t: the NumPy twin at the full size too
    haze = fit_haze(image, t_full[0, 0].numpy(), A, image.shape[:2], 4, 0.1, 0.05)
    img = tt(image)
    t_eq = GuidedUpsample(4, 0.1, 0.05)(t_full, img, img)[0, 0].numpy()
    assert np.abs(apply_haze(image, haze) - np.clip((image - A) / t_eq[..., None] + A, 0, 1)).max() < 1e-4


def test_scale_consistency_on_a_smooth_scene():
    """The same scene at 1x and 3x: the haze is estimated on the same working copy, so the outputs agree."""
    import cv2

    small = cv2.GaussianBlur(photo(60, 90, 3), (0, 0), 2)  # smooth: bicubic upscaling adds little
    big = np.clip(cv2.resize(small, (270, 180), interpolation=cv2.INTER_CUBIC), 0, 1)
    out_small = apply_haze(small, haze_for(small, side=90))
    out_big = apply_haze(big, haze_for(big, side=90))
    back = cv2.resize(out_big, (90, 60), interpolation=cv2.INTER_AREA)
    assert np.abs(back - out_small).mean() < 0.005


def test_strength_bounds_and_shapes():
    image = photo(40, 50)
    haze = haze_for(image)
    assert np.array_equal(apply_haze(image, haze, strength=0), image)
    for bad in (-1, 1.51, float("nan"), None, "x"):
        with pytest.raises(ValueError, match="strength must be"):
            check_strength(bad)
    with pytest.raises(ValueError, match="estimated for a 50x40 photo"):
        apply_haze(photo(41, 50), haze)


# ---------------------------------------------------------------------------------- clipping protection


def harsh_haze(image, protect, side=None, t=0.25, A=(0.8, 0.82, 0.85), radius=0):
    """A haze that the plain inversion clips a lot: a low t and an airlight darker than the bright pixels."""
    small = image if side is None else working_copy(image, side)
    t_map = np.full(small.shape[:2], t, np.float32)
    return fit_haze(small, t_map, A, image.shape[:2], radius, 0.01, 0.05, protect=protect)


def raw_inversion(image, haze, strength=1.0):
    """The inversion's output before clipping, from the t that apply_haze uses (no full-size knees)."""
    t = transmission(haze, grey(image), 0, strength=strength)
    return (image - haze.airlight) / t[..., None] + haze.airlight


def test_boundary_transmission_is_the_least_t_that_keeps_J_in_range():
    image = photo(30, 40, 4)
    A = np.array([0.8, 0.82, 0.85], np.float32)
    for c0, c1 in ((0.0, 1.0), (0.05, 0.95)):
        tb = boundary_transmission(image, A, c0, c1)
        J = (image - A) / np.maximum(tb, 1e-6)[..., None] + A
        inside = J[tb < 1]  # t_b = 1: the pixel itself is beyond [C0, C1], and t cannot exceed 1 (J = I)
        assert inside.min() >= c0 - 1e-5 and inside.max() <= c1 + 1e-5
        assert np.allclose(J[tb == 1], image[tb == 1], atol=1e-6)
        tight = np.isclose(J, c0, atol=1e-4) | np.isclose(J, c1, atol=1e-4)  # a smaller t would leave the range
        assert tight.any(axis=2)[tb < 1].all()


@pytest.mark.parametrize("strength", [1.0, 1.5])
def test_the_bound_keeps_J_in_range_at_the_working_size_and_at_full_size(strength):
    image = photo(64, 80, 5)
    plain = raw_inversion(image, harsh_haze(image, NO_PROTECTION), strength)
    assert plain.min() < -0.5 and plain.max() > 1.2  # the plain inversion leaves [0, 1] far behind
    bounded = Protection(bound_radius=1)
    # working copy = the photo: J stays in range exactly, whatever the strength (the floor comes last)
    J = raw_inversion(image, harsh_haze(image, bounded), strength)
    assert J.min() >= -1e-5 and J.max() <= 1 + 1e-5
    # at full size (a 4x smaller working copy, guided filter, the floor upsampled): it holds where the
    # working copy's average is close to the full-size pixel, as on a smooth scene; the knees do the rest
    import cv2

    smooth = cv2.GaussianBlur(image, (0, 0), 2)
    out = lambda x: ((x < -0.02) | (x > 1.02)).any(axis=2).mean()  # noqa: E731
    plain = raw_inversion(smooth, harsh_haze(smooth, NO_PROTECTION, side=20, radius=2), strength)
    J = raw_inversion(smooth, harsh_haze(smooth, bounded, side=20, radius=2), strength)
    assert out(plain) > 0.9 and out(J) < 0.25
    # the whole protection: no pixel newly at black or white (1 and 254 of 255)
    u8 = (smooth * 255 + 0.5).astype(np.uint8)
    haze = harsh_haze(smooth, DEFAULT_PROTECTION, side=20, radius=2)
    y = apply_haze(u8, haze, strength, protect=DEFAULT_PROTECTION)
    clipped = lambda x: ((x <= 1) | (x >= 254)).any(axis=2)  # noqa: E731
    assert not (clipped(y) & ~clipped(u8)).any()
    old = apply_haze(u8, harsh_haze(smooth, NO_PROTECTION, side=20, radius=2), strength)
    assert (clipped(old) & ~clipped(u8)).mean() > 0.3


@pytest.mark.parametrize("side", ["shadows", "highlights"])
def test_the_knee_keeps_the_output_off_black_and_white_in_order(side):
    # one row of grey levels from black to white; the airlight in the middle; t low
    levels = np.linspace(0.0, 1.0, 401, dtype=np.float32)
    image = np.repeat(levels[None, :, None], 3, axis=2)
    A = (0.6, 0.6, 0.6)
    knee = Protection(**{side: 0.1})
    haze = harsh_haze(image, knee, t=0.3, A=A)
    out = apply_haze(image, haze, protect=knee)[0, :, 0]
    plain = apply_haze(image, haze)[0, :, 0]
    assert np.all(np.diff(out) >= 0)  # the output keeps the order of the input
    assert out[0] == 0.0 and out[-1] == 1.0  # a pixel already at black or white stays there
    raw = (levels - 0.6) / 0.3 + 0.6
    if side == "shadows":
        inside = levels > 0
        assert np.all(out[inside] > 0) and np.all(out[inside] >= plain[inside])
        assert np.array_equal(out[raw >= 0.1 * 0.6], plain[raw >= 0.1 * 0.6])  # above the knee: untouched
        assert np.array_equal(out[levels > 0.6], plain[levels > 0.6])  # the other side: untouched
    else:
        inside = levels < 1
        assert np.all(out[inside] < 1) and np.all(out[inside] <= plain[inside])
        assert np.array_equal(out[raw <= 1 - 0.1 * 0.4], plain[raw <= 1 - 0.1 * 0.4])
        assert np.array_equal(out[levels < 0.6], plain[levels < 0.6])


def test_protected_strips_give_the_result_of_one_pass():
    image = photo(131, 97, 6)
    protect = Protection(bound_radius=2, shadows=0.1, highlights=0.1)
    haze = harsh_haze(image, protect, side=40, radius=3)
    whole = apply_haze(image, haze, rows=10_000, protect=protect)
    assert not np.array_equal(whole, apply_haze(image, haze, rows=10_000))  # the knees did something
    for rows in (1, 7, 64):
        assert np.array_equal(apply_haze(image, haze, rows=rows, protect=protect), whole)
    u8 = (image * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(apply_haze(u8, haze, rows=5, protect=protect), apply_haze(u8, haze, rows=1000, protect=protect))
    out = u8.copy()
    apply_haze(out, haze, out=out, rows=9, protect=protect)
    assert np.array_equal(out, apply_haze(u8, haze, protect=protect))
    assert np.array_equal(apply_haze(u8, haze, strength=0, protect=protect), u8)


def test_the_old_inversion_stays_available():
    image = photo(60, 70, 7)
    plain = harsh_haze(image, NO_PROTECTION, side=30, radius=3)
    assert plain.floor is None
    A, t = plain.airlight, transmission(plain, grey(image), 0)
    old = np.clip((image - A) / np.maximum(t, 0.1)[..., None] + A, 0, 1)
    assert np.abs(apply_haze(image, plain, t_floor=0.1) - old).max() < 1e-6
    assert np.array_equal(apply_haze(image, plain, protect=NO_PROTECTION), apply_haze(image, plain))
    # a card without "protect" (before issue 17) means no protection; the default card has one
    assert Protection.from_settings({"working_size": 384}) == NO_PROTECTION
    assert Protection.from_settings(two_scale_settings()) == DEFAULT_PROTECTION != NO_PROTECTION
    assert "protect" not in two_scale_settings(protect=NO_PROTECTION)


def test_protection_settings_are_checked():
    assert Protection(**DEFAULT_PROTECTION.settings()) == DEFAULT_PROTECTION  # the card's entry round-trips
    for bad in ({"bound_radius": -1}, {"bound_range": (0.5, 0.4)}, {"bound_op": "erode"}, {"shadows": 2.0},
                {"highlights": -0.1}):
        with pytest.raises(ValueError):
            Protection(**bad)
    with pytest.raises(TypeError):
        Protection(knee=2)
