import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dehaze.spectral import (
    azimuthal_spectrum,
    high_frequency_confusion,
    high_frequency_filter,
    log_magnitude_map,
    num_bins,
    phase_aware_spectrum,
    phase_coherence_spectrum,
)


def reference_spectrum(img: np.ndarray, drop_high: int = 0) -> np.ndarray:
    """Independent NumPy version of the documented rule for one (3, H, W) image."""
    g = 0.2989 * img[0] + 0.5870 * img[1] + 0.1140 * img[2]
    h, w = g.shape
    mag = np.abs(np.fft.fftshift(np.fft.fft2(g, norm="ortho")))
    logmag = np.log(mag + 1e-8)
    s = min(h, w)
    radii = np.zeros((h, w), dtype=int)
    for i in range(h):
        for j in range(w):
            radii[i, j] = int(math.floor(math.hypot((i - h // 2) * s / h, (j - w // 2) * s / w)))
    n = radii.max() + 1
    prof = np.array([logmag[radii == r].mean() for r in range(n)])
    prof = prof[1:n - drop_high]
    return (prof - prof.min()) / (prof.max() - prof.min() + 1e-8)


@pytest.mark.parametrize("h,w", [(32, 32), (17, 45), (33, 31), (8, 64)])
def test_matches_numpy_reference(h, w):
    x = torch.rand(3, 3, h, w, dtype=torch.float64) * 2 - 1
    got = azimuthal_spectrum(x)
    assert got.shape == (3, num_bins(h, w))
    for b in range(3):
        np.testing.assert_allclose(got[b].numpy(), reference_spectrum(x[b].numpy()), atol=1e-6)


def test_official_bin_count_and_drop_high():
    assert num_bins(32, 32) == 22
    assert azimuthal_spectrum(torch.rand(2, 3, 32, 32), drop_high=2).shape == (2, 20)  # official SSD-GAN length
    ref = reference_spectrum(torch.rand(3, 32, 32, dtype=torch.float64).numpy() * 2 - 1, drop_high=2)
    assert ref.shape == (20,)


@pytest.mark.parametrize("shape", [(2, 3, 16), (2, 2, 8, 8), (2, 3, 1, 9)])
def test_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="shape|at least"):
        azimuthal_spectrum(torch.rand(*shape))


def test_normalised_range_and_grayscale_input():
    v = azimuthal_spectrum(torch.rand(4, 1, 24, 40) * 2 - 1)
    assert torch.all(v >= 0) and torch.all(v <= 1)
    assert torch.allclose(v.amax(1), torch.ones(4), atol=1e-4)


def test_rotation_by_90_degrees_leaves_it_unchanged():
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64) * 2 - 1
    y = torch.rot90(x, 1, dims=(-2, -1))
    assert torch.allclose(azimuthal_spectrum(x), azimuthal_spectrum(y), atol=1e-9)


def test_checkerboard_and_blurred_copy_differ_in_top_bins():
    # paper Fig. 1 toy: a 16x16 checkerboard has its energy at the highest frequencies
    i, j = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    board = ((i + j) % 2).double() * 2 - 1
    torch.manual_seed(0)
    x = (0.8 * board + 0.05 * torch.randn(16, 16, dtype=torch.float64)).expand(1, 3, 16, 16).clone()
    k = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
    k2 = (k[:, None] * k[None, :] / 16).expand(3, 1, 3, 3)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), k2, groups=3)
    a, b = azimuthal_spectrum(x), azimuthal_spectrum(blurred)
    assert a[0, -1] > 0.9 and b[0, -1] < 0.1  # the checkerboard's energy sits in the Nyquist corner
    top = slice(-a.shape[1] // 4, None)
    assert (a[0, top] - b[0, top]).abs().mean() > 0.3


def _phase_scramble(gray: torch.Tensor, seed: int = 0) -> torch.Tensor:
    f = torch.fft.fft2(gray)
    gen = torch.Generator().manual_seed(seed)
    noise_phase = torch.angle(torch.fft.fft2(torch.randn(gray.shape, generator=gen, dtype=gray.dtype)))
    return torch.fft.ifft2(f.abs() * torch.exp(1j * noise_phase)).real


def _scene(h: int = 48, w: int = 48) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(-1, 1, h, dtype=torch.float64),
                          torch.linspace(-1, 1, w, dtype=torch.float64), indexing="ij")
    img = 0.3 * y + 0.6 * ((x - 0.2) ** 2 + y ** 2 < 0.2).double() - 0.5 * ((x < -0.4) & (y > 0.3)).double()
    return img


def test_phase_scramble_changes_phase_features_only():
    g = _scene()
    s = _phase_scramble(g)
    assert torch.allclose(torch.fft.fft2(g).abs(), torch.fft.fft2(s).abs(), atol=1e-8)
    x, y = g.expand(1, 3, *g.shape).clone(), s.expand(1, 3, *s.shape).clone()
    assert torch.allclose(azimuthal_spectrum(x), azimuthal_spectrum(y), atol=1e-6)
    px, py = phase_aware_spectrum(x), phase_aware_spectrum(y)
    assert torch.allclose(px[:, 0], py[:, 0], atol=1e-6)  # channel 0 is the magnitude vector
    assert (px[:, 1:] - py[:, 1:]).abs().mean() > 0.15
    assert px[:, 1:].mean() > py[:, 1:].mean()  # structured image: more coherent than its scrambled copy


def test_phase_coherence_is_shift_invariant_and_bounded():
    x = _scene().expand(2, 1, 48, 48).clone()
    shifted = torch.roll(x, shifts=(5, -7), dims=(-2, -1))
    a, b = phase_coherence_spectrum(x), phase_coherence_spectrum(shifted)
    assert torch.allclose(a, b, atol=1e-6)
    assert torch.all(a >= 0) and torch.all(a <= 1 + 1e-6)


def test_features_are_differentiable_and_finite():
    x = (torch.rand(2, 3, 20, 28) * 2 - 1).requires_grad_(True)
    (azimuthal_spectrum(x).sum() + phase_aware_spectrum(x).sum() + log_magnitude_map(x).sum()).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_log_magnitude_map_shape_and_range():
    m = log_magnitude_map(torch.rand(3, 3, 15, 22) * 2 - 1)
    assert m.shape == (3, 1, 15, 22)
    assert m.min() >= 0 and m.max() <= 1


def test_high_frequency_filter_removes_high_bins_and_keeps_low_ones():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32) * 1.6 - 0.8
    y = high_frequency_filter(x, radius=6)
    fx, fy = torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1)), torch.fft.fftshift(torch.fft.fft2(y), dim=(-2, -1))
    assert fy[..., 0, 0].abs().max() < 1e-3 * fx[..., 0, 0].abs().max() + 1e-4  # Nyquist corner gone
    assert torch.allclose(fx[..., 16, 16], fy[..., 16, 16], rtol=1e-3)  # DC kept
    assert torch.allclose(high_frequency_filter(x, radius=100), x, atol=1e-5)  # all-pass is identity


def test_high_frequency_confusion_swaps_high_band():
    torch.manual_seed(1)
    real, fake = torch.rand(2, 3, 32, 32) * 1.6 - 0.8, torch.rand(2, 3, 32, 32) * 1.6 - 0.8
    r2, f2 = high_frequency_confusion(real, fake, radius=5)
    assert torch.allclose(r2, real, atol=1e-5)
    hf = lambda t: t - high_frequency_filter(t, radius=5)  # noqa: E731
    # equal up to the [0, 1] clamp of the reference implementation
    assert (hf(f2) - hf(real)).abs().mean() < 5e-3 < (hf(fake) - hf(real)).abs().mean()
    assert not torch.allclose(f2, fake, atol=1e-2)
    with pytest.raises(ValueError, match="equal shapes"):
        high_frequency_confusion(real, fake[:1], 5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_runs_on_cuda():
    x = torch.rand(2, 3, 32, 32, device="cuda")
    assert torch.allclose(azimuthal_spectrum(x).cpu(), azimuthal_spectrum(x.cpu()), atol=1e-4)


@pytest.mark.parametrize("size", [(32, 32), (48, 48), (40, 56)])
def test_phase_features_have_no_bin_that_is_constant_by_construction(size):
    """A ring with a single coefficient has coherence 1 for every image; such bins are dropped."""
    from dehaze.spectral import informative_drop_high, num_bins

    torch.manual_seed(0)
    x = torch.rand(16, 3, *size) * 2 - 1
    f = phase_aware_spectrum(x)
    assert f.shape[-1] == num_bins(*size, informative_drop_high(*size))
    assert (f[:, 1:].std(dim=0) > 1e-3).all()  # every coherence bin varies across images
    noise = phase_coherence_spectrum(x)[..., :-1].mean()  # not "near 0" for noise: ~1/sqrt(coefficients)
    assert 0.1 < noise < 0.5
