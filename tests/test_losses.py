import math

import pytest
import torch

from dehaze.losses import (
    WeightedLoss,
    accuracy,
    classifier_loss,
    d_loss,
    g_loss,
    r1_penalty,
    spectral_regularizer,
)
from dehaze.nets import SSDOutput, ssd_combine


def _ssd_out(d_logit: torch.Tensor, c_logit: torch.Tensor, lam: float, space="prob") -> SSDOutput:
    return SSDOutput(d_logit, c_logit, ssd_combine(d_logit, c_logit, lam, space), space)


@pytest.mark.parametrize("lam", [0.5, 0.3, 0.8])
@pytest.mark.parametrize("d_val,c_val", [(0.2, 0.9), (0.7, 0.1), (0.5, 0.5)])
def test_discriminator_weight_matches_equation_11(lam, d_val, c_val):
    # d/dD of the fake term -log(1 - D_ss) must be 1 / (1 - D + (1-lam)/lam (1 - C))  (eq. 11)
    d_logit = torch.tensor([[math.log(d_val / (1 - d_val))]], dtype=torch.float64, requires_grad=True)
    c_logit = torch.tensor([[math.log(c_val / (1 - c_val))]], dtype=torch.float64)
    real = _ssd_out(torch.full((1, 1), 5.0, dtype=torch.float64), torch.full((1, 1), 5.0, dtype=torch.float64), lam)
    loss = d_loss(real, _ssd_out(d_logit, c_logit, lam), "nonsat")
    (grad_logit,) = torch.autograd.grad(loss, d_logit)
    grad_prob = grad_logit.item() / (d_val * (1 - d_val))  # chain rule through the sigmoid
    expected = 1 / (1 - d_val + (1 - lam) / lam * (1 - c_val))
    assert grad_prob == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("lam", [0.5, 0.25])
def test_generator_weight_matches_equation_12(lam):
    d_val, c_val = 0.3, 0.2
    d_logit = torch.tensor([[math.log(d_val / (1 - d_val))]], dtype=torch.float64, requires_grad=True)
    c_logit = torch.tensor([[math.log(c_val / (1 - c_val))]], dtype=torch.float64)
    (grad_logit,) = torch.autograd.grad(g_loss(_ssd_out(d_logit, c_logit, lam), "nonsat"), d_logit)
    expected = -1 / (d_val + (1 - lam) / lam * c_val)
    assert grad_logit.item() / (d_val * (1 - d_val)) == pytest.approx(expected, rel=1e-6)


def test_known_values_for_plain_logits():
    z = torch.zeros(4, 1)
    assert d_loss(z, z, "nonsat").item() == pytest.approx(2 * math.log(2))
    assert g_loss(z, "nonsat").item() == pytest.approx(math.log(2))
    assert d_loss(z, z, "hinge").item() == pytest.approx(2.0)
    assert g_loss(torch.ones(4, 1), "hinge").item() == pytest.approx(-1.0)
    assert d_loss(torch.ones(4, 1), z, "lsgan").item() == pytest.approx(0.0)
    assert g_loss(z, "lsgan").item() == pytest.approx(0.5)


def test_hinge_refuses_probability_space_and_unknown_loss():
    out = _ssd_out(torch.zeros(2, 1), torch.zeros(2, 1), 0.5, "prob")
    with pytest.raises(ValueError, match="combine='logit'"):
        g_loss(out, "hinge")
    with pytest.raises(ValueError, match="unknown GAN loss"):
        g_loss(torch.zeros(2, 1), "wgan")
    logit_out = _ssd_out(torch.zeros(2, 1), torch.zeros(2, 1), 0.5, "logit")
    assert g_loss(logit_out, "hinge").item() == pytest.approx(0.0)


def test_classifier_loss_and_accuracy():
    good = classifier_loss(torch.full((4, 1), 5.0), torch.full((4, 1), -5.0))
    bad = classifier_loss(torch.full((4, 1), -5.0), torch.full((4, 1), 5.0))
    assert good < 0.02 < 10 < bad
    assert accuracy(torch.ones(3), -torch.ones(3)) == 1.0
    assert accuracy(torch.full((2,), 0.4), torch.full((2,), 0.6), space="prob") == 0.0


def test_spectral_regularizer():
    torch.manual_seed(0)
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    blurred = torch.nn.functional.avg_pool2d(real, 3, 1, 1)
    fake = blurred.clone().requires_grad_(True)
    reg = spectral_regularizer(fake, real)
    reg.backward()
    assert fake.grad.abs().sum() > 0
    assert spectral_regularizer(real, real) < reg
    assert spectral_regularizer(blurred, real, paired=False).shape == ()


def test_r1_penalty_is_zero_for_constant_and_positive_for_linear_D():
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    assert r1_penalty((x * 2).sum(dim=(1, 2, 3)), x).item() == pytest.approx(4 * 3 * 64)


def test_weighted_loss_sums_the_nonzero_terms_and_reports_each():
    calls = []

    def term(name, value):
        return lambda x: calls.append(name) or x * value

    x = torch.tensor(2.0)
    loss = WeightedLoss({"a": 3.0, "b": 0.0, "c": 0.5},
                        {"a": ("A", term("a", 1.0)), "b": ("B", term("b", 7.0)), "c": ("C", term("c", 4.0))})
    total, parts = loss(x)
    assert total.item() == pytest.approx(3 * 2 + 0.5 * 8) and parts == {"A": 2.0, "C": 8.0}
    assert calls == ["a", "c"]  # a zero weight is not computed at all
    with pytest.raises(ValueError, match="unknown loss term"):
        WeightedLoss({"d": 1.0}, {"a": ("A", torch.mean)})
    with pytest.raises(ValueError, match="every loss weight is 0"):
        WeightedLoss({"a": 0.0}, {"a": ("A", torch.mean)})
