"""Image-quality metrics for restoration: PSNR, SSIM and spectral distance, in NumPy and in torch.

Two implementations of the same three definitions, one per use:

- **NumPy / OpenCV** (:func:`psnr_np`, :func:`ssim_np`, :func:`spectral_distance_np`): one ``HxWxC``
  image in ``[0, 1]`` against its ground truth, a Python float each. Used to *evaluate*
  (``dehaze eval``, :mod:`dehaze.evaluation`, model cards) and import no torch, so they run in the
  base install.
- **torch** (:func:`psnr`, :func:`ssim`, :func:`spectral_distance`): ``(B, C, H, W)`` tensors in
  ``[0, 1]`` on any device, per-image values ``(B,)``, differentiable. Used by *training*: the
  trainer's validation on the training device.
  torch and kornia are imported when one of them is first called, not with this module.

The two agree to 1e-4 (``tests/test_metrics.py``): the same Gaussian SSIM window (kornia's
``metrics.ssim``: 11 taps, σ 1.5, reflect padding, ``c1 = 0.01²``, ``c2 = 0.03²``, ``eps = 1e-12``,
the window shrunk to fit small images) and the same spectral vector φ
(:func:`dehaze.spectral.azimuthal_spectrum`).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["psnr", "psnr_np", "spectral_distance", "spectral_distance_np", "ssim", "ssim_np"]

SSIM_WINDOW = 11  # taps of the Gaussian SSIM window (σ 1.5), before shrinking to fit a small image
SSIM_SIGMA = 1.5
_SSIM_EPS = 1e-12  # kornia's default, added to the SSIM denominator
_GRAY = (0.2989, 0.5870, 0.1140)  # ITU-R BT.601 luma, as dehaze.spectral.to_gray
_LOG_EPS = 1e-8  # as dehaze.spectral: log(|F| + eps), min-max (v - lo) / (hi - lo + eps)


def _ssim_window(h: int, w: int, window: int = SSIM_WINDOW) -> int:
    """The SSIM window for an ``h x w`` image: ``window``, shrunk to an odd size below the short side, at least 3.

    Example:
        >>> _ssim_window(480, 640), _ssim_window(8, 20), _ssim_window(5, 7), _ssim_window(2, 2)
        (11, 7, 3, 3)
    """
    return max(min(window, (min(h, w) // 2) * 2 - 1), 3)


# ----------------------------------------------------------------------------- NumPy: evaluation


def _check_images(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.shape != y.shape or x.ndim not in (2, 3):
        raise ValueError(f"expected two HxW or HxWxC images of equal shape, got {x.shape} and {y.shape}")
    return np.asarray(x, np.float64), np.asarray(y, np.float64)


def psnr_np(x: np.ndarray, y: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two images in ``[0, 1]`` (data range 1), for evaluation.

    Example:
        >>> round(psnr_np(np.zeros((8, 8, 3)), np.full((8, 8, 3), 0.1)), 2)
        20.0
    """
    x, y = _check_images(x, y)
    mse = float(np.mean((x - y) ** 2))
    return float(10 * np.log10(1.0 / max(mse, 1e-12)))


@functools.lru_cache(maxsize=16)
def _gaussian(window: int, sigma: float = SSIM_SIGMA) -> np.ndarray:
    n = np.arange(window, dtype=np.float64) - window // 2
    g = np.exp(-(n**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_np(x: np.ndarray, y: np.ndarray, window: int = SSIM_WINDOW) -> float:
    """Structural similarity of two images in ``[0, 1]``, mean over pixels and channels, for evaluation.

    The SSIM map of kornia's ``metrics.ssim`` (sampled Gaussian window of ``window`` taps, σ 1.5,
    reflect padding, ``c1 = 0.01²``, ``c2 = 0.03²``, ``1e-12`` added to the denominator), computed
    in float64 with OpenCV's separable filter. Images shorter than the window get an odd window
    below their short side (at least 3), as :func:`ssim` does.

    Example:
        >>> x = np.random.default_rng(0).random((16, 16, 3))
        >>> round(ssim_np(x, x), 6), ssim_np(x, 1 - x) < 0
        (1.0, True)
    """
    x, y = _check_images(x, y)
    k = _gaussian(_ssim_window(*x.shape[:2], window))

    def blur(img: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(img, cv2.CV_64F, k, k, borderType=cv2.BORDER_REFLECT_101)

    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = blur(x), blur(y)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    sigma_xx, sigma_yy, sigma_xy = blur(x * x) - mu_xx, blur(y * y) - mu_yy, blur(x * y) - mu_xy
    num = (2 * mu_xy + c1) * (2 * sigma_xy + c2)
    den = (mu_xx + mu_yy + c1) * (sigma_xx + sigma_yy + c2)
    return float(np.mean(num / (den + _SSIM_EPS)))


@functools.lru_cache(maxsize=16)
def _radial_bins_np(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat radius bin of every frequency of a centred ``h x w`` spectrum and the count per bin.

    The rule of :func:`dehaze.spectral.radial_bins`: ``floor(sqrt((u S/H)² + (v S/W)²))``, ``S = min(H, W)``.
    """
    s = min(h, w)
    u = (np.arange(h, dtype=np.float64) - h // 2) * (s / h)
    v = (np.arange(w, dtype=np.float64) - w // 2) * (s / w)
    idx = np.floor(np.sqrt(u[:, None] ** 2 + v[None, :] ** 2)).astype(np.int64).ravel()
    return idx, np.bincount(idx).astype(np.float64)


def _azimuthal_spectrum_np(rgb: np.ndarray) -> np.ndarray:
    """φ of one image in ``[0, 1]`` (``HxW`` or ``HxWx3``): :func:`dehaze.spectral.azimuthal_spectrum` in NumPy.

    Luma of the image mapped to ``[-1, 1]``, orthonormal centred 2-D FFT, log magnitude, mean per
    radius bin, DC bin dropped, min-max normalised (``drop_high=0``, ``normalize=True``).
    """
    x = rgb * 2.0 - 1.0
    gray = x if x.ndim == 2 else x @ np.asarray(_GRAY if x.shape[2] == 3 else (1.0,), np.float64)
    h, w = gray.shape
    if h < 2 or w < 2:
        raise ValueError(f"the spectral distance needs at least 2x2 pixels, got {h}x{w}")
    mag = np.abs(np.fft.fftshift(np.fft.fft2(gray, norm="ortho")))
    idx, counts = _radial_bins_np(h, w)
    v = (np.bincount(idx, weights=np.log(mag + _LOG_EPS).ravel(), minlength=len(counts)) / counts)[1:]
    return (v - v.min()) / (v.max() - v.min() + _LOG_EPS)


def spectral_distance_np(x: np.ndarray, y: np.ndarray) -> float:
    """Mean absolute difference of the SSD spectral vectors φ(x), φ(y) of two images in ``[0, 1]`` (0 = identical).

    For evaluation; φ as :func:`dehaze.spectral.azimuthal_spectrum` (luma, log-magnitude FFT, mean
    per radius ring, min-max normalised).

    Example:
        >>> x = np.random.default_rng(0).random((32, 32, 3))
        >>> spectral_distance_np(x, x), spectral_distance_np(x, cv2.blur(x, (3, 3))) > 0.05
        (0.0, True)
    """
    x, y = _check_images(x, y)
    return float(np.mean(np.abs(_azimuthal_spectrum_np(x) - _azimuthal_spectrum_np(y))))


# ----------------------------------------------------------------------------- torch: training


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (data range 1), on tensors, for training's validation.

    Example:
        >>> import torch
        >>> round(float(psnr(torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.1))[0]), 2)
        20.0
    """
    import torch

    _check_pair(x, y)
    mse = ((x.float() - y.float()) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = SSIM_WINDOW) -> torch.Tensor:
    """Structural similarity per image (kornia, Gaussian window 11, σ 1.5, data range 1), differentiable.

    For training: the SSIM loss and the trainer's validation. Evaluation uses :func:`ssim_np`.
    """
    import kornia

    _check_pair(x, y)
    m = kornia.metrics.ssim(x.float(), y.float(), window_size=_ssim_window(*x.shape[-2:], window), max_val=1.0)
    return m.flatten(1).mean(1)


def spectral_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of the SSD spectral vectors φ(x), φ(y) per image (0 = identical), on tensors.

    For training's validation; evaluation uses :func:`spectral_distance_np`.
    """
    from dehaze.spectral import azimuthal_spectrum

    _check_pair(x, y)
    return (azimuthal_spectrum(x.float() * 2 - 1) - azimuthal_spectrum(y.float() * 2 - 1)).abs().mean(1)
