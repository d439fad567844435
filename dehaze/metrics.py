"""Image-quality metrics for restoration: PSNR, SSIM (kornia) and spectral distance.

Inputs are ``(B, 3, H, W)`` tensors in ``[0, 1]``; every function returns per-image values ``(B,)``.
"""

from __future__ import annotations

import kornia
import torch

from dehaze.spectral import azimuthal_spectrum


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (data range 1).

    Example:
        >>> round(float(psnr(torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.1))[0]), 2)
        20.0
    """
    _check_pair(x, y)
    mse = ((x.float() - y.float()) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11) -> torch.Tensor:
    """Structural similarity per image (kornia, Gaussian window 11, σ 1.5, data range 1)."""
    _check_pair(x, y)
    window = min(window, (min(x.shape[-2:]) // 2) * 2 - 1)
    m = kornia.metrics.ssim(x.float(), y.float(), window_size=max(window, 3), max_val=1.0)
    return m.flatten(1).mean(1)


def spectral_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of the SSD spectral vectors φ(x), φ(y) per image (0 = identical)."""
    _check_pair(x, y)
    return (azimuthal_spectrum(x.float() * 2 - 1) - azimuthal_spectrum(y.float() * 2 - 1)).abs().mean(1)
