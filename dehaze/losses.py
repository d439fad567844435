"""GAN losses that accept a plain discriminator or an SSD one, plus reconstruction and spectral terms.

A discriminator output is either a logits tensor or an :class:`~dehaze.nets.ssd.SSDOutput`.
For an SSD output the adversarial losses use ``combined`` (D_ss), in which C's verdict is
detached: the adversarial loss trains D (and G through D) only, while C is trained by
:func:`classifier_loss` (eq. 5).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F

from dehaze.nets.ssd import SSDOutput
from dehaze.spectral import azimuthal_spectrum

Output = torch.Tensor | SSDOutput
GAN_LOSSES = ("nonsat", "hinge", "lsgan")
_EPS = 1e-6


def _unpack(out: Output) -> tuple[torch.Tensor, str]:
    if isinstance(out, SSDOutput):
        return out.combined, out.space
    return out.float(), "logit"


def _check_kind(kind: str, space: str) -> None:
    if kind not in GAN_LOSSES:
        raise ValueError(f"unknown GAN loss {kind!r}; choose one of {GAN_LOSSES}")
    if kind == "hinge" and space == "prob":
        raise ValueError("the hinge loss needs logits: build the SSD discriminator with combine='logit'")


def d_loss(real_out: Output, fake_out: Output, kind: str = "nonsat") -> torch.Tensor:
    """Discriminator loss (the negative of eq. 7 for ``nonsat``).

    Example:
        >>> d_loss(torch.zeros(4, 1), torch.zeros(4, 1)).item()  # 2·log 2
        1.3862943649291992
    """
    r, space = _unpack(real_out)
    f, space_f = _unpack(fake_out)
    if space != space_f:
        raise ValueError("real and fake outputs come from differently combined discriminators")
    _check_kind(kind, space)
    if space == "prob":
        r, f = r.clamp(_EPS, 1 - _EPS), f.clamp(_EPS, 1 - _EPS)
        if kind == "nonsat":
            return -torch.log(r).mean() - torch.log1p(-f).mean()
        return 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f ** 2).mean()
    if kind == "nonsat":
        return F.softplus(-r).mean() + F.softplus(f).mean()
    if kind == "hinge":
        return F.relu(1 - r).mean() + F.relu(1 + f).mean()
    return 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f ** 2).mean()


def g_loss(fake_out: Output, kind: str = "nonsat") -> torch.Tensor:
    """Generator adversarial loss (non-saturating form for ``nonsat``).

    Example:
        >>> round(g_loss(torch.zeros(4, 1)).item(), 4)  # log 2
        0.6931
    """
    f, space = _unpack(fake_out)
    _check_kind(kind, space)
    if space == "prob":
        f = f.clamp(_EPS, 1 - _EPS)
        return -torch.log(f).mean() if kind == "nonsat" else 0.5 * ((f - 1) ** 2).mean()
    if kind == "nonsat":
        return F.softplus(-f).mean()
    if kind == "hinge":
        return -f.mean()
    return 0.5 * ((f - 1) ** 2).mean()


def classifier_loss(real_out: Output, fake_out: Output) -> torch.Tensor:
    """C's own loss (eq. 5): binary cross-entropy, real spectra → 1, fake → 0.

    Accepts SSD outputs (uses ``spectral``) or C's logits directly.
    """
    r = real_out.spectral if isinstance(real_out, SSDOutput) else real_out
    f = fake_out.spectral if isinstance(fake_out, SSDOutput) else fake_out
    return (F.binary_cross_entropy_with_logits(r, torch.ones_like(r))
            + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f)))


def accuracy(real: torch.Tensor, fake: torch.Tensor, space: str = "logit") -> float:
    """Fraction of correct real/fake decisions (threshold 0 for logits, 0.5 for probabilities)."""
    t = 0.0 if space == "logit" else 0.5
    correct = (real > t).float().sum() + (fake <= t).float().sum()
    return float(correct / (real.numel() + fake.numel()))


def ranking_auc(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Probability that a real sample scores above a fake one (ties count half): the area under the
    ROC curve. Unlike :func:`accuracy` it does not depend on a threshold, so it shows a classifier
    that ranks well but whose outputs all fall on one side of 0.

    Example:
        >>> ranking_auc(torch.tensor([0.3, 0.2]), torch.tensor([0.1, 0.25]))
        0.75
    """
    r, f = real.detach().flatten().float(), fake.detach().flatten().float()
    greater = (r[:, None] > f[None, :]).float().mean() + 0.5 * (r[:, None] == f[None, :]).float().mean()
    return float(greater)


def l1_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    return F.l1_loss(x, y)


def spectral_regularizer(fake: torch.Tensor, real: torch.Tensor, paired: bool = True,
                         drop_high: int = 0) -> torch.Tensor:
    """SNGAN+REG's spectral loss (Durall et al. 2020): BCE between φ(fake) and φ(real).

    Gradient flows into ``fake`` only. With ``paired=False`` (unconditional GANs, where
    fake and real images are unrelated) every fake vector is compared with the batch mean
    of the real vectors.

    Example:
        >>> x = torch.rand(2, 3, 32, 32) * 2 - 1
        >>> blurred = F.avg_pool2d(x, 5, stride=1, padding=2)  # φ(−x) = φ(x), so compare with a blur
        >>> bool(spectral_regularizer(x, x) < spectral_regularizer(x, blurred))
        True
    """
    pf = azimuthal_spectrum(fake.float(), drop_high=drop_high).clamp(_EPS, 1 - _EPS)
    with torch.no_grad():
        pr = azimuthal_spectrum(real.float(), drop_high=drop_high)
        if not paired:
            pr = pr.mean(dim=0, keepdim=True).expand_as(pf)
    return F.binary_cross_entropy(pf, pr)


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): E‖∇_x D(x)‖² on real images (``real`` must require grad)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


class WeightedLoss:
    """A loss built once from ``{name: weight}`` (a config's ``loss:`` section, BasicSR style) and
    ``{name: (log name, term)}``: the weighted sum of the terms whose weight is not zero.

    Calling it with the terms' arguments returns the total and each term's value by its log name
    (for logging; the zero-weight terms are not computed at all).

    Example:
        >>> x = torch.tensor([1.0, 3.0])
        >>> loss = WeightedLoss({"mean": 2.0, "max": 0.0}, {"mean": ("G_mean", torch.mean), "max": ("G_max", torch.amax)})
        >>> loss(x)
        (tensor(4.), {'G_mean': 2.0})
    """

    def __init__(self, weights: Mapping[str, float], terms: Mapping[str, tuple[str, Callable[..., torch.Tensor]]]):
        unknown = sorted(set(weights) - set(terms))
        if unknown:
            raise ValueError(f"unknown loss term(s) {', '.join(unknown)}; known: {', '.join(terms)}")
        self.terms = {terms[k][0]: (float(w), terms[k][1]) for k, w in weights.items() if w}
        if not self.terms:
            raise ValueError("every loss weight is 0")

    def __call__(self, *args) -> tuple[torch.Tensor, dict[str, float]]:
        total, parts = None, {}
        for name, (weight, term) in self.terms.items():
            value = term(*args)
            parts[name] = value.item()
            total = weight * value if total is None else total + weight * value
        return total, parts
