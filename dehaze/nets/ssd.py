"""SSD-GAN's enhanced discriminator D_ss: spatial realness D combined with spectral realness C."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from dehaze.nets.spectral_classifier import PhaseSpectrumClassifier, SpectralClassifier, SpectrumMapClassifier
from dehaze.spectral import informative_drop_high, num_bins, spectral_feature, spectral_gain

COMBINES = ("prob", "logit", "weighted")


class SSDOutput(NamedTuple):
    """What :class:`SSDDiscriminator` returns.

    Attributes:
        spatial: D's logits (``(B, 1, h, w)`` for a PatchGAN, ``(B, 1)`` for a global D).
        spectral: C's logits ``(B, 1)``; carry gradient to C's parameters only (input detached).
        combined: D_ss, built from ``spectral.detach()``: probabilities when ``space == "prob"``
            (eq. 6), logits when ``space == "logit"`` (``logit`` and ``weighted`` combines).
        space: ``"prob"`` or ``"logit"``.
    """

    spatial: torch.Tensor
    spectral: torch.Tensor
    combined: torch.Tensor
    space: str


def combine_space(combine: str) -> str:
    """The space D_ss lives in for a combine: ``prob`` for ``prob``, ``logit`` for ``logit`` and ``weighted``."""
    if combine not in COMBINES:
        raise ValueError(f"unknown combine {combine!r}; choose one of {COMBINES}")
    return "prob" if combine == "prob" else "logit"


def hard_example_weights(spectral: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs. 11–12's per-sample weights of D's gradient, from C's logits alone (D undecided, σ(D) = ½).

    With D_ss = λ·σ(D) + (1−λ)·σ(C) and the non-saturating loss, the gradient that reaches D's logit is
    the plain-D gradient times ``λσ(D) / D_ss`` where the loss pushes D_ss up (real images in D's loss,
    fakes in G's: eq. 12) and ``λ(1−σ(D)) / (1 − D_ss)`` where it pushes D_ss down (fakes in D's loss:
    eq. 11). At σ(D) = ½ (the hinge loss has no saturation of its own to keep) these are

        up = λ / (λ + 2(1−λ)·σ(C)),    down = λ / (λ + 2(1−λ)·(1−σ(C))),

    both λ when C is undecided, ``up`` largest for samples C calls fake (G works harder on a poor
    spectrum), ``down`` largest for fakes C calls real (D works harder on a fake with a real-looking
    spectrum). λ = ½: from 1/3 to 1. Returns ``(up, down)``, shaped like ``spectral``, without gradient.

    Example:
        >>> up, down = hard_example_weights(torch.tensor([[-10.0], [0.0], [10.0]]), 0.5)
        >>> up.flatten().tolist(), down.flatten().tolist()  # doctest: +ELLIPSIS
        ([0.99..., 0.5, 0.33...], [0.33..., 0.5, 0.99...])
    """
    q = torch.sigmoid(spectral.detach().float())
    lam_t = torch.as_tensor(lam, dtype=q.dtype)
    up = lam_t / (lam_t + 2 * (1 - lam_t) * q).clamp_min(1e-12)
    down = lam_t / (lam_t + 2 * (1 - lam_t) * (1 - q)).clamp_min(1e-12)
    return up, down


class _Weighted(torch.autograd.Function):
    """Value ``lam·D + (1−lam)·c``; the gradient to D is the incoming one times ``up`` where it is
    negative (the loss wants D_ss higher) and times ``down`` where it is positive."""

    @staticmethod
    def forward(ctx, spatial, c, lam, up, down):
        ctx.save_for_backward(up, down)
        return lam * spatial + (1 - lam) * c

    @staticmethod
    def backward(ctx, grad):
        up, down = ctx.saved_tensors
        return grad * torch.where(grad < 0, up, down), None, None, None, None


def ssd_combine(spatial: torch.Tensor, spectral: torch.Tensor, lam: float, space: str = "prob",
                c_scale: float = 1.0) -> torch.Tensor:
    """D_ss from D's and C's logits; C enters detached (paper: "backpropagation does not pass through C").

    - ``prob``: ``lam·σ(D) + (1−lam)·σ(C)`` (eq. 6), for the non-saturating / least-squares losses.
    - ``logit``: ``lam·D + (1−lam)·C`` (the official code's SNGAN form; with ``c_scale=0.4`` and lam ½ its
      StyleGAN form ``(D + 0.4·C)/2``).
    - ``weighted``: the value of ``logit``, but the gradient to D is weighted per sample by
      :func:`hard_example_weights` (eqs. 11–12 carried over to losses on logits).

    **Where C reaches G.** C is detached, so it can act on G only through the loss's curvature. Under
    the hinge loss with ``logit``, G's loss ``−mean(D_ss)`` is linear in D_ss: C adds a constant, and
    G's gradient is exactly ``lam`` times plain D's whatever C says (C only changes which of D's
    hinge terms are active, in D's own step). In ``prob`` space with the non-saturating loss the
    gradient is eq. 12, ``−∇D / (D + (1−lam)/lam·C)``: samples C calls fake weigh more. The
    non-saturating loss on ``logit`` (softplus) also lets C in, through ``σ(−D_ss)``.
    ``weighted`` is the form in which C reaches G under the hinge loss
    (``tests/nets/test_ssd_gradients.py`` shows all three).

    C's ``(B, 1)`` output is broadcast over a patch map.

    Example:
        >>> ssd_combine(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1), 0.5).shape
        torch.Size([2, 1, 4, 4])
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    c = c_scale * spectral.detach().reshape(spectral.shape[0], *([1] * (spatial.dim() - 1)))
    if space == "prob":
        return lam * torch.sigmoid(spatial) + (1 - lam) * torch.sigmoid(c)
    if space == "logit":
        return lam * spatial + (1 - lam) * c
    if space == "weighted":
        up, down = hard_example_weights(c, lam)
        return _Weighted.apply(spatial, c.to(spatial.dtype), float(lam), up.to(spatial.dtype),
                               down.to(spatial.dtype))
    raise ValueError(f"unknown combine {space!r}; choose one of {COMBINES}")


class SSDDiscriminator(nn.Module):
    """D_ss = lam·D + (1−lam)·C(φ(x)) (SSD-GAN, eq. 6).

    Args:
        D: spatial discriminator, called as ``D(x)`` or ``D(x, cond=cond)``.
        C: spectral classifier over ``feature(x)``.
        lam: weight of spatial realness (paper: 0.5; 1 is plain D).
        feature: ``azimuthal`` (paper's φ), ``phase`` (phase-aware) or ``full`` (2-D map).
        combine: ``prob`` (eq. 6, for the non-saturating/LS losses), ``logit`` (official code; any loss)
            or ``weighted`` (logit value, eqs. 11–12 weights: C reaches G under the hinge loss);
            see :func:`ssd_combine`.
        drop_high: corner bins dropped from radial features.
        c_scale: factor on C's logit inside D_ss (official StyleGAN variant: 0.4).
        conditional: C sees the spectral gain of ``x`` over the condition,
            ``feature(x) − feature(cond)`` (:func:`~dehaze.spectral.spectral_gain`), as a conditional
            D sees the condition; only with ``cond`` (image-to-image GANs).

    Example:
        >>> from dehaze.nets.patchgan import PatchDiscriminator
        >>> Dss = SSDDiscriminator(PatchDiscriminator(width=8), SpectralClassifier(20))
        >>> out = Dss(torch.zeros(2, 3, 32, 32), cond=torch.zeros(2, 3, 32, 32))
        >>> out.combined.shape, out.spectral.shape
        (torch.Size([2, 1, 2, 2]), torch.Size([2, 1]))
    """

    def __init__(self, D: nn.Module, C: nn.Module, lam: float = 0.5, feature: str = "azimuthal",
                 combine: str = "prob", drop_high: int = 0, c_scale: float = 1.0, conditional: bool = False):
        super().__init__()
        self.conditional = bool(conditional)
        self.space = combine_space(combine)
        self.D, self.C = D, C
        self.lam, self.feature, self.combine, self.drop_high = float(lam), feature, combine, drop_high
        self.c_scale = float(c_scale)
        self._phi = spectral_feature(feature)

    def phi(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Spectral features of ``x`` (of its gain over ``cond`` when conditional), without gradient
        (C's input is always detached)."""
        with torch.no_grad():
            if self.conditional:
                if cond is None:
                    raise ValueError("a conditional spectral classifier needs cond (the network's input)")
                return spectral_gain(x.detach().float(), cond.detach().float(), self.feature, self.drop_high)
            if self.feature == "full":
                return self._phi(x.detach().float())
            return self._phi(x.detach().float(), drop_high=self.drop_high)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> SSDOutput:
        phi = self.phi(x, cond)
        spatial = self.D(x) if cond is None else self.D(x, cond=cond)
        spectral = self.C(phi).float()
        combined = ssd_combine(spatial.float(), spectral, self.lam, self.combine, self.c_scale)
        return SSDOutput(spatial, spectral, combined, self.space)


def build_spectral_classifier(feature: str, height: int, width: int, hidden: int = 0, conv_width: int = 32,
                              drop_high: int = 0, standardize: bool = False) -> nn.Module:
    """The classifier that fits ``feature`` for ``height × width`` training images (``standardize``:
    a :class:`~dehaze.nets.spectral_classifier.RunningStandardize` input layer)."""
    if feature == "azimuthal":
        return SpectralClassifier(num_bins(height, width, drop_high), hidden=hidden, standardize=standardize)
    if feature == "phase":
        return PhaseSpectrumClassifier(num_bins(height, width, informative_drop_high(height, width, drop_high)),
                                       width=conv_width, standardize=standardize)
    if feature == "full":
        return SpectrumMapClassifier(width=conv_width, standardize=standardize)
    raise ValueError(f"unknown spectral feature {feature!r}; choose azimuthal, phase or full")
