"""SSD-GAN's enhanced discriminator D_ss: spatial realness D combined with spectral realness C."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from dehaze.nets.spectral_classifier import PhaseSpectrumClassifier, SpectralClassifier, SpectrumMapClassifier
from dehaze.spectral import num_bins, spectral_feature

COMBINES = ("prob", "logit")


class SSDOutput(NamedTuple):
    """What :class:`SSDDiscriminator` returns.

    Attributes:
        spatial: D's logits (``(B, 1, h, w)`` for a PatchGAN, ``(B, 1)`` for a global D).
        spectral: C's logits ``(B, 1)``; carry gradient to C's parameters only (input detached).
        combined: D_ss, built from ``spectral.detach()``: probabilities when ``space == "prob"``
            (eq. 6), logits when ``space == "logit"`` (official code).
        space: ``"prob"`` or ``"logit"``.
    """

    spatial: torch.Tensor
    spectral: torch.Tensor
    combined: torch.Tensor
    space: str


def ssd_combine(spatial: torch.Tensor, spectral: torch.Tensor, lam: float, space: str = "prob") -> torch.Tensor:
    """D_ss from D's and C's logits; C enters detached (paper: "backpropagation does not pass through C").

    ``prob``: ``lam·σ(D) + (1−lam)·σ(C)`` (eq. 6). ``logit``: ``lam·D + (1−lam)·C`` (official code).
    C's ``(B, 1)`` output is broadcast over a patch map.

    Example:
        >>> ssd_combine(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1), 0.5).shape
        torch.Size([2, 1, 4, 4])
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    c = spectral.detach().reshape(spectral.shape[0], *([1] * (spatial.dim() - 1)))
    if space == "prob":
        return lam * torch.sigmoid(spatial) + (1 - lam) * torch.sigmoid(c)
    if space == "logit":
        return lam * spatial + (1 - lam) * c
    raise ValueError(f"unknown combine {space!r}; choose one of {COMBINES}")


class SSDDiscriminator(nn.Module):
    """D_ss = lam·D + (1−lam)·C(φ(x)) (SSD-GAN, eq. 6).

    Args:
        D: spatial discriminator, called as ``D(x)`` or ``D(x, cond=cond)``.
        C: spectral classifier over ``feature(x)``.
        lam: weight of spatial realness (paper: 0.5; 1 is plain D).
        feature: ``azimuthal`` (paper's φ), ``phase`` (phase-aware) or ``full`` (2-D map).
        combine: ``prob`` (eq. 6, for the non-saturating/LS losses) or ``logit`` (official code; any loss).
        drop_high: corner bins dropped from radial features.

    Example:
        >>> from dehaze.nets.patchgan import PatchDiscriminator
        >>> Dss = SSDDiscriminator(PatchDiscriminator(width=8), SpectralClassifier(20))
        >>> out = Dss(torch.zeros(2, 3, 32, 32), cond=torch.zeros(2, 3, 32, 32))
        >>> out.combined.shape, out.spectral.shape
        (torch.Size([2, 1, 2, 2]), torch.Size([2, 1]))
    """

    def __init__(self, D: nn.Module, C: nn.Module, lam: float = 0.5, feature: str = "azimuthal",
                 combine: str = "prob", drop_high: int = 0):
        super().__init__()
        if combine not in COMBINES:
            raise ValueError(f"unknown combine {combine!r}; choose one of {COMBINES}")
        self.D, self.C = D, C
        self.lam, self.feature, self.combine, self.drop_high = float(lam), feature, combine, drop_high
        self._phi = spectral_feature(feature)

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        """Spectral features of ``x``, without gradient (C's input is always detached)."""
        with torch.no_grad():
            if self.feature == "full":
                return self._phi(x.detach().float())
            return self._phi(x.detach().float(), drop_high=self.drop_high)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> SSDOutput:
        spatial = self.D(x) if cond is None else self.D(x, cond=cond)
        spectral = self.C(self.phi(x)).float()
        return SSDOutput(spatial, spectral, ssd_combine(spatial.float(), spectral, self.lam, self.combine),
                         self.combine)


def build_spectral_classifier(feature: str, height: int, width: int, hidden: int = 0, conv_width: int = 32,
                              drop_high: int = 0) -> nn.Module:
    """The classifier that fits ``feature`` for ``height × width`` training images."""
    if feature == "azimuthal":
        return SpectralClassifier(num_bins(height, width, drop_high), hidden=hidden)
    if feature == "phase":
        return PhaseSpectrumClassifier(num_bins(height, width, drop_high), width=conv_width)
    if feature == "full":
        return SpectrumMapClassifier(width=conv_width)
    raise ValueError(f"unknown spectral feature {feature!r}; choose azimuthal, phase or full")
