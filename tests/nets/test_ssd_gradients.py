"""Where C's verdict reaches G (issue 18, item 1), measured with autograd on a tiny SNGAN.

C enters D_ss detached, so it can change G's gradient only through the loss's curvature:
under the hinge loss on ``logit`` D_ss it cannot; in ``prob`` space with the non-saturating
loss (eq. 12) and with the ``weighted`` combine it does.
"""

import pytest
import torch

from dehaze import gan
from dehaze.losses import d_loss, g_loss
from dehaze.nets import SpectralClassifier, SSDDiscriminator
from dehaze.nets.ssd import hard_example_weights, ssd_combine
from dehaze.spectral import num_bins


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def _nets(combine: str, lam: float = 0.5):
    torch.manual_seed(0)
    G, D = gan.build_nets("sngan", 32, nz=16, ngf=16, ndf=16)
    C = SpectralClassifier(num_bins(32, 32, 2))
    Dss = SSDDiscriminator(D, C, lam=lam, combine=combine, drop_high=2)
    with torch.no_grad():  # converge spectral norm's power iteration, then freeze it (eval) so calls agree
        for _ in range(30):
            Dss(torch.rand(2, 3, 32, 32) * 2 - 1)
    return G, D, Dss.eval()


class _Undecided(torch.nn.Module):
    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return torch.zeros(v.shape[0], 1)


def _g_grad(G, D, kind: str) -> torch.Tensor:
    """G's gradient (all parameters, flattened) of its adversarial loss through ``D`` on fixed noise."""
    G.zero_grad(set_to_none=True)
    fake = G(G.noise(8, generator=torch.Generator().manual_seed(1)))
    g_loss(D(fake), kind).backward()
    return torch.cat([p.grad.flatten() for p in G.parameters() if p.grad is not None])


def _set_c_bias(Dss: SSDDiscriminator, value: float) -> None:
    with torch.no_grad():
        Dss.C.net.bias.fill_(value)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_hinge_on_logits_C_cannot_reach_G():
    G, D, Dss = _nets("logit")
    plain = _g_grad(G, D, "hinge")
    ssd = _g_grad(G, Dss, "hinge")
    torch.testing.assert_close(ssd, 0.5 * plain, rtol=1e-5, atol=1e-7)  # exactly λ × plain D
    _set_c_bias(Dss, 50.0)
    torch.testing.assert_close(_g_grad(G, Dss, "hinge"), ssd, rtol=1e-5, atol=1e-7)  # C's verdict: no effect
    _set_c_bias(Dss, -50.0)
    torch.testing.assert_close(_g_grad(G, Dss, "hinge"), ssd, rtol=1e-5, atol=1e-7)


def test_nonsat_in_probability_space_C_reaches_G():
    G, _, Dss = _nets("prob")
    base = _g_grad(G, Dss, "nonsat")
    _set_c_bias(Dss, 3.0)  # C calls every sample real: eq. 12 down-weights G's gradient
    assert _rel(_g_grad(G, Dss, "nonsat"), base) > 0.1
    _set_c_bias(Dss, -3.0)  # C calls every sample fake: G's gradient grows
    assert _g_grad(G, Dss, "nonsat").norm() > base.norm()


def test_nonsat_on_logits_C_reaches_G_through_the_softplus():
    G, _, Dss = _nets("logit")
    base = _g_grad(G, Dss, "nonsat")
    _set_c_bias(Dss, 20.0)  # D_ss + 10: the softplus saturates, G's gradient shrinks
    assert _g_grad(G, Dss, "nonsat").norm() < 0.5 * base.norm()


def test_weighted_lets_C_reach_G_under_hinge():
    G, D, Dss = _nets("weighted")
    plain = _g_grad(G, D, "hinge")
    _set_c_bias(Dss, -40.0)  # C sure every sample is fake: weight 1, G gets plain D's full gradient
    torch.testing.assert_close(_g_grad(G, Dss, "hinge"), plain, rtol=1e-4, atol=1e-6)
    _set_c_bias(Dss, 40.0)  # C sure every sample is real: weight λ / (2 − λ) = 1/3
    torch.testing.assert_close(_g_grad(G, Dss, "hinge"), plain / 3, rtol=1e-4, atol=1e-6)


def test_weighted_equals_logit_when_C_is_undecided():
    G, _, Dss = _nets("weighted")
    Dss.C = _Undecided()  # σ(C) = ½ for every sample
    weighted = _g_grad(G, Dss, "hinge")
    Dss.combine = "logit"
    torch.testing.assert_close(weighted, _g_grad(G, Dss, "hinge"), rtol=1e-5, atol=1e-7)


def test_weighted_value_is_the_official_logit_and_D_weights_follow_eq_11():
    torch.manual_seed(0)
    d = torch.randn(6, 1)
    c = torch.tensor([[-4.0], [0.0], [4.0], [-4.0], [0.0], [4.0]])
    torch.testing.assert_close(ssd_combine(d, c, 0.5, "weighted"), ssd_combine(d, c, 0.5, "logit"))
    up, down = hard_example_weights(c, 0.5)
    # D's hinge loss: real images (first three) push D_ss up, fakes (last three) down
    dr, df = d[:3].clone().requires_grad_(True), d[3:].clone().requires_grad_(True)
    d_loss(ssd_combine(dr - 10, c[:3], 0.5, "weighted"), ssd_combine(df + 10, c[3:], 0.5, "weighted"),
           "hinge").backward()  # shifted so every hinge term is active
    torch.testing.assert_close(dr.grad, -up[:3] / 3)
    torch.testing.assert_close(df.grad, down[3:] / 3)
    assert df.grad[2] > df.grad[0]  # a fake C calls real is the hard one for D (eq. 11)


def test_official_stylegan_form():
    d, c = torch.randn(4, 1), torch.randn(4, 1)
    torch.testing.assert_close(ssd_combine(d, c, 0.5, "logit", c_scale=0.4), (d + 0.4 * c) / 2)
    with pytest.raises(ValueError, match="unknown combine"):
        ssd_combine(d, c, 0.5, "mean")
