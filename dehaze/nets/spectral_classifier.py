"""Spectral classifiers C for SSD-GAN: they judge realness from spectral features only."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm as _sn


def _maybe_sn(module: nn.Module, on: bool) -> nn.Module:
    return _sn(module) if on else module


def _resample(v: torch.Tensor, n: int) -> torch.Tensor:
    """Linearly resample the last axis of ``v`` (``(B, R)`` or ``(B, C, R)``) to length ``n``."""
    if v.shape[-1] == n:
        return v
    squeeze = v.dim() == 2
    y = F.interpolate(v.unsqueeze(1) if squeeze else v, size=n, mode="linear", align_corners=True)
    return y.squeeze(1) if squeeze else y


class RunningStandardize(nn.Module):
    """``(v − mean) / std`` with running statistics of every batch seen in training mode.

    The spectral classifiers' optional input layer. Unlike BatchNorm it normalises with the
    running statistics in training mode too, so a batch of real and a batch of fake features
    (passed separately, as discriminators see them) go through the same affine map and keep
    the difference that tells them apart; it only brings features whose spread is a few
    hundredths (log gains, min-max normalised spectra) to unit scale, which a spectrally
    normalised linear C (Lipschitz 1) cannot do by itself. The first batch sets the statistics.

    Args:
        shape: shape of one feature vector (``(R,)``, ``(3, R)``) or ``()`` for one scalar over all.
        momentum: weight of each new batch in the running statistics.

    Example:
        >>> norm = RunningStandardize((4,))
        >>> y = norm(torch.randn(64, 4) * 0.01 + 3)
        >>> bool(y.std() > 0.5)
        True
    """

    def __init__(self, shape: tuple[int, ...] = (), momentum: float = 0.01, eps: float = 1e-6):
        super().__init__()
        self.shape, self.momentum, self.eps = tuple(shape), float(momentum), float(eps)
        self.register_buffer("mean", torch.zeros(self.shape))
        self.register_buffer("var", torch.ones(self.shape))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(v.dim() - len(self.shape))) if self.shape else tuple(range(v.dim()))
        if self.shape and tuple(v.shape[-len(self.shape):]) != self.shape:
            raise ValueError(f"expected features (..., {', '.join(map(str, self.shape))}), got {tuple(v.shape)}")
        if self.training:
            with torch.no_grad():
                mean, var = v.float().mean(dims), v.float().var(dims, unbiased=False)
                m = 1.0 if int(self.seen) == 0 else self.momentum
                self.mean.lerp_(mean, m)
                self.var.lerp_(var, m)
                self.seen += 1
        return (v - self.mean) / torch.sqrt(self.var + self.eps)


def _standardizer(on: bool, shape: tuple[int, ...]) -> nn.Module:
    return RunningStandardize(shape) if on else nn.Identity()


class SpectralClassifier(nn.Module):
    """C over the spectral vector φ(x) ``(B, R)`` → logits ``(B, 1)``.

    ``hidden=0`` is the official SSD-GAN classifier: one spectrally normalised linear
    layer. ``hidden>0`` adds one hidden layer (an MLP). ``standardize`` puts a
    :class:`RunningStandardize` in front. Vectors whose length differs from ``n_bins``
    (another image size) are linearly resampled over normalised frequency.

    Example:
        >>> C = SpectralClassifier(20)
        >>> C(torch.rand(4, 20)).shape
        torch.Size([4, 1])
    """

    def __init__(self, n_bins: int, hidden: int = 0, spectral_norm: bool = True, standardize: bool = False):
        super().__init__()
        self.n_bins = n_bins
        self.norm = _standardizer(standardize, (n_bins,))
        if hidden > 0:
            self.net = nn.Sequential(_maybe_sn(nn.Linear(n_bins, hidden), spectral_norm), nn.LeakyReLU(0.2),
                                     _maybe_sn(nn.Linear(hidden, 1), spectral_norm))
        else:
            self.net = _maybe_sn(nn.Linear(n_bins, 1), spectral_norm)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        if v.dim() != 2:
            raise ValueError(f"expected a spectral vector (B, R), got {tuple(v.shape)}")
        return self.net(self.norm(_resample(v, self.n_bins)))


class PhaseSpectrumClassifier(nn.Module):
    """1-D convolutional C over phase-aware features ``(B, 3, R)`` (magnitude + two coherences);
    ``standardize`` as in :class:`SpectralClassifier`.

    Example:
        >>> C = PhaseSpectrumClassifier(20)
        >>> C(torch.rand(4, 3, 20)).shape
        torch.Size([4, 1])
    """

    def __init__(self, n_bins: int, channels: int = 3, width: int = 32, spectral_norm: bool = True,
                 standardize: bool = False):
        super().__init__()
        self.n_bins = n_bins
        self.channels = channels
        self.norm = _standardizer(standardize, (channels, n_bins))
        self.conv = nn.Sequential(
            _maybe_sn(nn.Conv1d(channels, width, 3, 1, 1), spectral_norm), nn.LeakyReLU(0.2),
            _maybe_sn(nn.Conv1d(width, width, 3, 1, 1), spectral_norm), nn.LeakyReLU(0.2),
        )
        self.head = _maybe_sn(nn.Linear(width * n_bins, 1), spectral_norm)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        if v.dim() != 3 or v.shape[1] != self.channels:
            raise ValueError(f"expected phase-aware features (B, {self.channels}, R), got {tuple(v.shape)}")
        h = self.conv(self.norm(_resample(v, self.n_bins)))
        return self.head(h.flatten(1))


class SpectrumMapClassifier(nn.Module):
    """2-D convolutional C over the centred log-magnitude map ``(B, 1, H, W)`` ("full spectrum").

    A second input channel carries each frequency's normalised radius (0 at DC, 1 at the
    edge midpoints), so the translation-equivariant convolutions know which band they look
    at. Global average pooling makes it size-agnostic. ``standardize`` scales the map by one
    running mean and standard deviation (:class:`RunningStandardize`).

    Example:
        >>> C = SpectrumMapClassifier(width=8)
        >>> C(torch.rand(2, 1, 32, 48)).shape
        torch.Size([2, 1])
    """

    def __init__(self, width: int = 32, n_layers: int = 4, spectral_norm: bool = True, standardize: bool = False):
        super().__init__()
        self.norm = _standardizer(standardize, ())
        layers: list[nn.Module] = []
        c = 2
        for i in range(n_layers):
            cout = width * min(2 ** i, 4)
            layers += [_maybe_sn(nn.Conv2d(c, cout, 4, 2, 1), spectral_norm), nn.LeakyReLU(0.2)]
            c = cout
        self.conv = nn.Sequential(*layers)
        self.head = _maybe_sn(nn.Linear(c, 1), spectral_norm)

    @staticmethod
    def _radius(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
        s = min(h, w)
        u = (torch.arange(h, device=like.device, dtype=like.dtype) - h // 2) * (s / h)
        v = (torch.arange(w, device=like.device, dtype=like.dtype) - w // 2) * (s / w)
        return torch.sqrt(u[:, None] ** 2 + v[None, :] ** 2) / (s / 2)

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        if m.dim() != 4 or m.shape[1] != 1:
            raise ValueError(f"expected a spectrum map (B, 1, H, W), got {tuple(m.shape)}")
        r = self._radius(m.shape[-2], m.shape[-1], m).expand(m.shape[0], 1, -1, -1)
        h = self.conv(torch.cat([self.norm(m), r], dim=1))
        return self.head(h.mean(dim=(2, 3)))
