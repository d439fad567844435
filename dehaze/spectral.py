"""Spectral features of images: the SSD-GAN spectral vector φ(x) and its relatives.

All functions take image batches ``(B, C, H, W)`` in ``[-1, 1]`` (C = 1 or 3), are pure
tensor code (vectorised, device-agnostic, differentiable) and work for any ``H × W``.

Bin rule (shared by every radial feature here)
----------------------------------------------
After ``fftshift`` the DC term sits at ``(H // 2, W // 2)``. A frequency at centred
indices ``(u, v)`` gets the radius

    ρ = sqrt((u · S / H)² + (v · S / W)²),   S = min(H, W),

i.e. frequencies are measured in cycles per short side, so the rings are circles in
physical frequency for non-square images too. Its bin is ``floor(ρ)`` (as in the
official SSD-GAN code, ``azimuthalAverage``). Bin 0 (the DC term, plus for non-square
images the frequencies below one cycle per short side) is dropped. Optionally the last
``drop_high`` bins are dropped too: they lie in the corners of the spectrum where only a
few frequencies fall, and the official SSD-GAN code drops 2 "to avoid noise" (20 bins for
32 × 32). The default here is 0 (22 bins for 32 × 32): the corner bins hold the
Nyquist-rate detail (a 1-pixel checkerboard lives only there), which is exactly what the
spectral classifier is meant to see; pass ``drop_high=2`` to match the official code.
"""

from __future__ import annotations

import functools

import torch
import torch.nn as nn

__all__ = [
    "to_gray",
    "radial_bins",
    "num_bins",
    "azimuthal_spectrum",
    "phase_coherence_spectrum",
    "phase_aware_spectrum",
    "informative_drop_high",
    "spectral_gain",
    "log_magnitude_map",
    "radial_mask",
    "high_frequency_filter",
    "high_frequency_confusion",
    "AzimuthalSpectrum",
    "PhaseAwareSpectrum",
    "LogMagnitudeMap",
    "HighFrequencyFilter",
    "SPECTRAL_FEATURES",
    "spectral_feature",
]

# ITU-R BT.601 luma weights (as in the official SSD-GAN code)
_GRAY = (0.2989, 0.5870, 0.1140)
_EPS = 1e-8


def _check_images(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have shape (B, 1 or 3, H, W), got {tuple(x.shape)}")
    if x.shape[-2] < 2 or x.shape[-1] < 2:
        raise ValueError(f"{name} must be at least 2x2 pixels, got {tuple(x.shape[-2:])}")


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """Luma (ITU-R 601) of ``(B, 3, H, W)`` images; 1-channel input is passed through.

    Returns:
        ``(B, H, W)`` tensor.

    Example:
        >>> to_gray(torch.zeros(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """
    _check_images(x)
    if x.shape[1] == 1:
        return x[:, 0]
    w = x.new_tensor(_GRAY).view(1, 3, 1, 1)
    return (x * w).sum(dim=1)


@functools.lru_cache(maxsize=64)
def _bins_cached(h: int, w: int, device: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    s = min(h, w)
    u = (torch.arange(h, dtype=torch.float64) - h // 2) * (s / h)
    v = (torch.arange(w, dtype=torch.float64) - w // 2) * (s / w)
    rho = torch.sqrt(u[:, None] ** 2 + v[None, :] ** 2)
    idx = torch.floor(rho).long().flatten()
    n = int(idx.max()) + 1
    counts = torch.bincount(idx, minlength=n).double()
    return idx.to(device), counts.to(device), n


def radial_bins(h: int, w: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, int]:
    """Integer radius bin of every frequency of a centred ``h × w`` spectrum (module docstring rule).

    Cached per size and device.

    Returns:
        ``(index, counts, n)``: flat bin index ``(h*w,)``, frequencies per bin ``(n,)`` and bin count.
    """
    return _bins_cached(int(h), int(w), str(torch.device(device)))


def num_bins(h: int, w: int, drop_high: int = 0) -> int:
    """Length ``R`` of the spectral vector of an ``h × w`` image.

    Example:
        >>> num_bins(32, 32), num_bins(32, 32, drop_high=2)
        (22, 20)
    """
    _, _, n = radial_bins(h, w)
    r = n - 1 - drop_high
    if r < 1:
        raise ValueError(f"a {h}x{w} image has too few frequency bins for drop_high={drop_high}")
    return r


def _centred_fft(g: torch.Tensor) -> torch.Tensor:
    # FFT in float32 at least (half precision FFT is limited to powers of two and inaccurate)
    if g.dtype in (torch.float16, torch.bfloat16):
        g = g.float()
    return torch.fft.fftshift(torch.fft.fft2(g, norm="ortho"), dim=(-2, -1))


def _radial_mean(values: torch.Tensor, h: int, w: int, drop_high: int) -> torch.Tensor:
    """Mean of ``values (B, H, W)`` (real or complex) over each radius bin -> ``(B, R)``."""
    idx, counts, n = radial_bins(h, w, values.device)
    flat = values.reshape(values.shape[0], -1)
    sums = flat.new_zeros(flat.shape[0], n).index_add_(1, idx, flat)
    mean = sums / counts.to(sums.real.dtype if sums.is_complex() else sums.dtype)
    end = n - drop_high
    if end <= 1:
        raise ValueError(f"a {h}x{w} image has too few frequency bins for drop_high={drop_high}")
    return mean[:, 1:end]


def _minmax(v: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    lo = v.amin(dim=1, keepdim=True)
    hi = v.amax(dim=1, keepdim=True)
    return (v - lo) / (hi - lo + eps)


def azimuthal_spectrum(x: torch.Tensor, drop_high: int = 0, normalize: bool = True) -> torch.Tensor:
    """The SSD-GAN spectral vector φ(x) (paper eq. 2-4).

    Grayscale (ITU-R 601), centred 2-D FFT, log magnitude, mean over each integer radius
    bin (module docstring), DC bin dropped, per-sample min-max normalisation.

    Args:
        x: images ``(B, C, H, W)`` in ``[-1, 1]``, C = 1 or 3.
        drop_high: number of outermost (corner) bins to drop (official code: 2).
        normalize: min-max normalise each vector to ``[0, 1]`` (with an epsilon).

    Returns:
        ``(B, R)`` with ``R = num_bins(H, W, drop_high)``.

    Example:
        >>> azimuthal_spectrum(torch.rand(4, 3, 32, 32) * 2 - 1).shape
        torch.Size([4, 22])
    """
    _check_images(x)
    h, w = x.shape[-2:]
    mag = _centred_fft(to_gray(x)).abs()
    v = _radial_mean(torch.log(mag + _EPS), h, w, drop_high)
    return _minmax(v) if normalize else v


def phase_coherence_spectrum(x: torch.Tensor, drop_high: int = 0) -> torch.Tensor:
    """Band-wise phase coherence: how spatially concentrated the energy of each frequency band is.

    For each radius band r and each axis a ∈ {vertical, horizontal} this is

        κ_a(r) = | Σ_{ring r} F(ω + e_a) · conj F(ω) | / Σ_{ring r} |F(ω + e_a)| · |F(ω)|,

    the normalised correlation of neighbouring Fourier coefficients. By the correlation
    theorem, Σ_ω F(ω + e) conj F(ω) is the Fourier coefficient at the lowest frequency ``e``
    of the band's energy map |f_r(p)|². It is small when the band's energy is spread evenly
    over the image (stationary noise, or an image whose phase has been scrambled) and large
    when it is concentrated in edges and objects. "Small" is not 0: for noise the sum is one
    of random phasors, about ``1/sqrt(n)`` for ``n`` coefficients in the ring (measured on
    white noise, mean of 64 images: 0.47 in bin 1, 0.14-0.37 in the other bins at 32 px and
    0.07-0.37 at 128 px; natural photos 0.43-0.54 in bins 1-3). It is invariant to circular shifts (a shift multiplies the sum by one unit
    phasor) and lies in ``[0, 1]``.

    A ring that holds a single coefficient (the last corner bin of even square sizes) has
    κ = 1 for every input, so it carries no information; :func:`phase_aware_spectrum` drops
    such bins (:func:`informative_bins`).

    Returns:
        ``(B, 2, R)``: vertical and horizontal coherence per band.

    Example:
        >>> phase_coherence_spectrum(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 2, 22])
    """
    _check_images(x)
    h, w = x.shape[-2:]
    f = _centred_fft(to_gray(x))
    out = []
    for dim in (-2, -1):
        nb = torch.roll(f, shifts=-1, dims=dim)  # F(ω + e_a) (circular)
        num = _radial_mean(nb * f.conj(), h, w, drop_high).abs()
        den = _radial_mean(nb.abs() * f.abs(), h, w, drop_high)
        out.append(num / (den + _EPS))
    return torch.stack(out, dim=1)


def informative_drop_high(h: int, w: int, drop_high: int = 0) -> int:
    """``drop_high`` raised past trailing bins that hold a single frequency (their phase coherence
    is 1 for every image, see :func:`phase_coherence_spectrum`).

    Example:
        >>> informative_drop_high(32, 32), informative_drop_high(32, 32, drop_high=2)
        (1, 2)
    """
    _, counts, n = radial_bins(h, w)
    k = 0
    while k < n - 2 and counts[n - 1 - k] <= 1:
        k += 1
    return max(int(drop_high), k)


def phase_aware_spectrum(x: torch.Tensor, drop_high: int = 0, normalize: bool = True) -> torch.Tensor:
    """Magnitude and phase features stacked as channels: ``(B, 3, R)``.

    Channel 0 is :func:`azimuthal_spectrum` (min-max normalised when ``normalize``); channels 1-2
    are :func:`phase_coherence_spectrum`. An image and a copy with scrambled phase have identical
    channel 0 but different channels 1-2. Bins holding a single frequency are dropped from all
    channels (:func:`informative_drop_high`): ``R = num_bins(H, W, informative_drop_high(H, W, drop_high))``.

    Example:
        >>> phase_aware_spectrum(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 3, 21])
    """
    _check_images(x)
    dh = informative_drop_high(x.shape[-2], x.shape[-1], drop_high)
    mag = azimuthal_spectrum(x, drop_high=dh, normalize=normalize).unsqueeze(1)
    return torch.cat([mag, phase_coherence_spectrum(x, drop_high=dh)], dim=1)


def log_magnitude_map(x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """The full centred 2-D log-magnitude spectrum (the reproduction report's "modified SSD").

    Returns:
        ``(B, 1, H, W)``, min-max normalised per sample to ``[0, 1]`` when ``normalize``.

    Example:
        >>> log_magnitude_map(torch.rand(2, 3, 16, 24)).shape
        torch.Size([2, 1, 16, 24])
    """
    _check_images(x)
    m = torch.log(_centred_fft(to_gray(x)).abs() + _EPS)
    if normalize:
        b = m.shape[0]
        m = _minmax(m.reshape(b, -1)).reshape_as(m)
    return m.unsqueeze(1)


@functools.lru_cache(maxsize=64)
def _mask_cached(h: int, w: int, radius: float, device: str) -> torch.Tensor:
    s = min(h, w)
    u = (torch.arange(h, dtype=torch.float32) - h // 2) * (s / h)
    v = (torch.arange(w, dtype=torch.float32) - w // 2) * (s / w)
    rho = torch.sqrt(u[:, None] ** 2 + v[None, :] ** 2)
    return (rho <= radius).float().to(device)


def radial_mask(h: int, w: int, radius: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """Centred low-pass mask ``(h, w)``: 1 where the frequency radius (module rule) is ``<= radius``."""
    return _mask_cached(int(h), int(w), float(radius), str(torch.device(device)))


def _split_bands(x: torch.Tensor, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    f = _centred_fft(x * 0.5 + 0.5)
    m = radial_mask(x.shape[-2], x.shape[-1], radius, x.device)
    return f * m, f * (1 - m)


def _to_image(f_centred: torch.Tensor) -> torch.Tensor:
    y = torch.fft.ifft2(torch.fft.ifftshift(f_centred, dim=(-2, -1)), norm="ortho").real
    return y.clamp(0, 1) * 2 - 1


def high_frequency_filter(x: torch.Tensor, radius: float) -> torch.Tensor:
    """HFF (Li et al. 2021): remove frequencies above ``radius`` before the discriminator sees ``x``.

    Per channel; ``radius`` in the bin units of the module docstring. The reference code
    takes ``abs`` of the inverse FFT; we take the real part (the imaginary part is
    round-off for a real input, and ``abs`` would fold negative ringing upwards).

    Example:
        >>> high_frequency_filter(torch.rand(1, 3, 32, 32) * 2 - 1, radius=8).shape
        torch.Size([1, 3, 32, 32])
    """
    _check_images(x)
    low, _ = _split_bands(x, radius)
    return _to_image(low)


def high_frequency_confusion(
    real: torch.Tensor, fake: torch.Tensor, radius: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """HFC (Li et al. 2021): give fake images the real images' high frequencies.

    Returns ``(real', fake')`` where ``real'`` is ``real`` (round-tripped) and ``fake'`` has
    ``fake``'s frequencies up to ``radius`` and ``real``'s above it, so the discriminator
    cannot use high-frequency differences. Batches must have equal shapes.
    """
    _check_images(real, "real")
    _check_images(fake, "fake")
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have equal shapes, got {tuple(real.shape)} and {tuple(fake.shape)}")
    r_low, r_high = _split_bands(real, radius)
    f_low, _ = _split_bands(fake, radius)
    return _to_image(r_low + r_high), _to_image(f_low + r_high)


class AzimuthalSpectrum(nn.Module):
    """Module form of :func:`azimuthal_spectrum`."""

    def __init__(self, drop_high: int = 0):
        super().__init__()
        self.drop_high = drop_high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return azimuthal_spectrum(x, self.drop_high)


class PhaseAwareSpectrum(nn.Module):
    """Module form of :func:`phase_aware_spectrum`."""

    def __init__(self, drop_high: int = 0):
        super().__init__()
        self.drop_high = drop_high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return phase_aware_spectrum(x, self.drop_high)


class LogMagnitudeMap(nn.Module):
    """Module form of :func:`log_magnitude_map`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return log_magnitude_map(x)


class HighFrequencyFilter(nn.Module):
    """Module form of :func:`high_frequency_filter` (an optional discriminator-input transform)."""

    def __init__(self, radius: float):
        super().__init__()
        self.radius = float(radius)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return high_frequency_filter(x, self.radius)


# name -> feature function, for configs ("azimuthal" is the paper's φ)
SPECTRAL_FEATURES = {
    "azimuthal": azimuthal_spectrum,
    "phase": phase_aware_spectrum,
    "full": log_magnitude_map,
}


def spectral_feature(name: str):
    """Feature function by config name: ``azimuthal``, ``phase`` or ``full``."""
    try:
        return SPECTRAL_FEATURES[name]
    except KeyError:
        raise ValueError(f"unknown spectral feature {name!r}; choose one of {sorted(SPECTRAL_FEATURES)}") from None


def spectral_gain(x: torch.Tensor, cond: torch.Tensor, feature: str = "azimuthal", drop_high: int = 0) -> torch.Tensor:
    """What an image-to-image network did to the spectrum: ``feature(x) − feature(cond)``, unnormalised.

    The conditional form of a spectral feature, for conditional GANs (a restored image ``x`` of
    the input ``cond``): the log-magnitude terms become the log gain of each band (how much the
    output amplified that band over its input), the phase coherences their change. The spectrum
    of one photo is dominated by its scene, and the ground truth and a good restoration of the
    same scene have nearly the same one (a classifier of φ(x) alone stays near chance on them);
    the gain over the input removes the scene and keeps what the restoration did
    (docs/spectral-classifier.md).

    Args:
        x, cond: image batches of equal shape ``(B, C, H, W)`` in ``[-1, 1]``.
        feature: ``azimuthal`` → ``(B, R)``, ``phase`` → ``(B, 3, R)``, ``full`` → ``(B, 1, H, W)``.

    Example:
        >>> x = torch.rand(2, 3, 32, 32) * 2 - 1
        >>> spectral_gain(x, x).abs().max().item()
        0.0
    """
    _check_images(x)
    _check_images(cond, "cond")
    if x.shape != cond.shape:
        raise ValueError(f"x and cond must have equal shapes, got {tuple(x.shape)} and {tuple(cond.shape)}")
    if feature == "azimuthal":
        return azimuthal_spectrum(x, drop_high, normalize=False) - azimuthal_spectrum(cond, drop_high, normalize=False)
    if feature == "phase":
        return phase_aware_spectrum(x, drop_high, normalize=False) - phase_aware_spectrum(cond, drop_high, normalize=False)
    if feature == "full":
        return log_magnitude_map(x, normalize=False) - log_magnitude_map(cond, normalize=False)
    raise ValueError(f"unknown spectral feature {feature!r}; choose one of {sorted(SPECTRAL_FEATURES)}")
