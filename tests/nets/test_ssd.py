import pytest
import torch

from dehaze.losses import classifier_loss, d_loss, g_loss
from dehaze.nets import (
    PatchDiscriminator,
    PhaseSpectrumClassifier,
    SpectralClassifier,
    SpectrumMapClassifier,
    SSDDiscriminator,
    UNetGenerator,
    build_spectral_classifier,
    ssd_combine,
)


def _setup(feature="azimuthal", combine="prob", size=32):
    torch.manual_seed(0)
    G = UNetGenerator(width=4, depth=3)
    C = build_spectral_classifier(feature, size, size, conv_width=8)
    Dss = SSDDiscriminator(PatchDiscriminator(width=8, n_layers=2), C, lam=0.5, feature=feature, combine=combine)
    hazy = torch.rand(2, 3, size, size) * 2 - 1
    clear = torch.rand(2, 3, size, size) * 2 - 1
    return G, Dss, hazy, clear


def test_classifier_shapes():
    assert SpectralClassifier(22)(torch.rand(3, 22)).shape == (3, 1)
    assert SpectralClassifier(22, hidden=16)(torch.rand(3, 30)).shape == (3, 1)  # resampled
    assert PhaseSpectrumClassifier(22, width=8)(torch.rand(3, 3, 22)).shape == (3, 1)
    assert SpectrumMapClassifier(width=8)(torch.rand(3, 1, 33, 47)).shape == (3, 1)
    with pytest.raises(ValueError, match="spectral vector"):
        SpectralClassifier(22)(torch.rand(3, 1, 22))


@pytest.mark.parametrize("feature", ["azimuthal", "phase", "full"])
@pytest.mark.parametrize("combine", ["prob", "logit"])
def test_generator_loss_gives_no_gradient_to_C(feature, combine):
    G, Dss, hazy, _ = _setup(feature, combine)
    fake = G(hazy)
    g_loss(Dss(fake, cond=hazy), "nonsat").backward()
    assert all(p.grad is None for p in Dss.C.parameters())
    assert all(p.grad is not None for p in G.parameters() if p.requires_grad)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in Dss.D.parameters())


@pytest.mark.parametrize("feature", ["azimuthal", "phase", "full"])
def test_adversarial_d_loss_trains_D_only_and_C_learns_from_its_own_loss(feature):
    G, Dss, hazy, clear = _setup(feature)
    real, fake = Dss(clear, cond=hazy), Dss(G(hazy).detach(), cond=hazy)
    d_loss(real, fake).backward(retain_graph=True)
    assert all(p.grad is None for p in Dss.C.parameters())
    classifier_loss(real, fake).backward()
    assert all(p.grad is not None for p in Dss.C.parameters())


def test_no_generator_gradient_through_C():
    G, Dss, hazy, _ = _setup()
    fake = G(hazy)
    out = Dss(fake, cond=hazy)
    assert not out.spectral.requires_grad or all(
        g is None for g in torch.autograd.grad(out.spectral.sum(), list(G.parameters()), allow_unused=True))


def test_combination_matches_equation_6_and_logit_form():
    d, c = torch.randn(3, 1, 4, 4), torch.randn(3, 1)
    p = ssd_combine(d, c, 0.3, "prob")
    assert torch.allclose(p, 0.3 * torch.sigmoid(d) + 0.7 * torch.sigmoid(c).view(3, 1, 1, 1))
    q = ssd_combine(d, c, 0.3, "logit")
    assert torch.allclose(q, 0.3 * d + 0.7 * c.view(3, 1, 1, 1))
    assert torch.allclose(ssd_combine(d, c, 1.0, "prob"), torch.sigmoid(d))  # lam = 1 is plain D
    with pytest.raises(ValueError):
        ssd_combine(d, c, 1.5)
