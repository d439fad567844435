"""Two-scale dehazing's full-size half (dehaze.twoscale) and its torch twin (nets.unet.guided_upsample)."""

import numpy as np
import pytest
import torch

from dehaze.nets.unet import GuidedUpsample, guided_upsample
from dehaze.twoscale import apply_haze, check_strength, fit_haze, working_copy


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
