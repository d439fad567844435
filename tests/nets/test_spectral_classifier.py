"""The spectral classifier's input: running standardisation, the conditional (spectral-gain) feature,
and whether C can learn to tell a restoration from the ground truth of the same scene."""

import pytest
import torch
import torch.nn.functional as F

from dehaze.losses import accuracy, classifier_loss
from dehaze.nets import PatchDiscriminator, SSDDiscriminator, build_spectral_classifier
from dehaze.nets.spectral_classifier import RunningStandardize
from dehaze.spectral import spectral_gain


def test_running_standardize_maps_real_and_fake_batches_alike():
    torch.manual_seed(0)
    norm = RunningStandardize((5,), momentum=0.5)
    real, fake = torch.randn(64, 5) * 0.02 + 1.0, torch.randn(64, 5) * 0.02 + 1.01
    a, b = norm(real), norm(fake)  # separate calls, as a discriminator sees them
    assert a.std() > 0.5  # brought to unit scale
    assert (b.mean() - a.mean()) > 0.2  # the gap between the batches survives (BatchNorm would remove it)
    norm.eval()
    before = norm.mean.clone()
    norm(torch.randn(8, 5) + 100)
    assert torch.equal(norm.mean, before)  # no update in eval mode
    with pytest.raises(ValueError, match=r"\(\.\.\., 5\)"):
        norm(torch.zeros(2, 4))


def test_spectral_gain_removes_the_scene():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    assert spectral_gain(x, x).abs().max() == 0
    for feature, shape in (("azimuthal", (3, 22)), ("phase", (3, 3, 21)), ("full", (3, 1, 32, 32))):
        assert spectral_gain(x * 0.5, x, feature).shape == shape
    # a global contrast change is the same log gain for every scene
    g1, g2 = spectral_gain(x[:1] * 0.5, x[:1]), spectral_gain(x[1:2] * 0.5, x[1:2])
    assert torch.allclose(g1, g2, atol=1e-4) and torch.allclose(g1, torch.full_like(g1, torch.log(torch.tensor(0.5))), atol=1e-4)
    with pytest.raises(ValueError, match="equal shapes"):
        spectral_gain(x, x[:, :, :16])


def test_conditional_classifier_needs_the_condition():
    D = SSDDiscriminator(PatchDiscriminator(width=4, n_layers=2), build_spectral_classifier("azimuthal", 32, 32),
                         conditional=True)
    with pytest.raises(ValueError, match="needs cond"):
        D(torch.zeros(2, 3, 32, 32))


def _scenes(n: int, seed: int) -> torch.Tensor:
    """Images whose spectra differ a lot from scene to scene (random 1/f^a slopes and contrasts)."""
    g = torch.Generator().manual_seed(seed)
    f = torch.fft.fftfreq(32)
    r = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2).clamp(min=1 / 32)
    slope = 1 + 1.5 * torch.rand(n, 1, 1, 1, generator=g)
    spec = torch.fft.fft2(torch.randn(n, 3, 32, 32, generator=g)) / r ** slope
    img = torch.fft.ifft2(spec).real
    img = img / img.flatten(1).std(1).view(-1, 1, 1, 1) * (0.1 + 0.4 * torch.rand(n, 1, 1, 1, generator=g))
    return img.clamp(-1, 1)


def _train_C(conditional: bool, steps: int = 300) -> float:
    """Held-out accuracy of C after training on: real = a scene, fake = the same scene slightly
    blurred (a restoration that lost some detail), condition = the scene with haze (lower contrast)."""
    torch.manual_seed(0)
    C = build_spectral_classifier("azimuthal", 32, 32, standardize=True)
    D = SSDDiscriminator(PatchDiscriminator(width=4, n_layers=2), C, conditional=conditional)
    opt = torch.optim.Adam(C.parameters(), lr=2e-4, betas=(0.5, 0.999))
    blur = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]).div(16).expand(3, 1, 3, 3)

    def batch(n, seed):
        real = _scenes(n, seed)
        fake = 0.7 * real + 0.3 * F.conv2d(F.pad(real, (1, 1, 1, 1), mode="circular"), blur, groups=3)
        return real * 0.4 + 0.3, real, fake

    for step in range(steps):
        hazy, real, fake = batch(8, step)
        loss = classifier_loss(D(real, cond=hazy), D(fake, cond=hazy))
        opt.zero_grad()
        loss.backward()
        opt.step()
    D.eval()
    hazy, real, fake = batch(256, 10_000)
    with torch.no_grad():
        return accuracy(D(real, cond=hazy).spectral, D(fake, cond=hazy).spectral)


def test_conditional_classifier_learns_what_the_plain_one_cannot():
    """The finding of docs/spectral-classifier.md in miniature: scene-to-scene spectral variation
    hides a restoration's small spectral error from C(φ(x)); C(φ(x) − φ(hazy)) sees it."""
    plain, cond = _train_C(False), _train_C(True)
    assert cond > 0.9 and cond > plain + 0.2, (plain, cond)
