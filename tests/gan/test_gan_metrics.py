import numpy as np
import pytest
import torch
import torch.nn as nn

from dehaze.metrics import (
    InceptionFeatures,
    InceptionWeightsError,
    fid_kid,
    find_inception_weights,
    frechet_distance,
    kid_from_features,
    mean_power_spectrum,
    plot_power_spectra,
    plot_spectrum_differences,
    radial_power_spectrum,
    save_image_grid,
    spectral_discrepancy,
    spectrum_difference_map,
)
from dehaze.metrics import gan as gm
from dehaze.metrics.__main__ import main as metrics_main
from dehaze.spectral import num_bins


def _spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_fid_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu1, np.diag(s1), mu1, np.diag(s1)) == pytest.approx(0, abs=1e-9)


def test_fid_matches_an_eigenvalue_computation():
    # Tr((S1 S2)^1/2) = Σ sqrt(λ_i(S1 S2)): S1 S2 is similar to an SPD matrix, so its eigenvalues are positive
    rng = np.random.default_rng(1)
    mu1, mu2, s1, s2 = rng.normal(size=8), rng.normal(size=8), _spd(rng, 8), _spd(rng, 8)
    tr = np.sqrt(np.linalg.eigvals(s1 @ s2).real).sum()
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_kid_is_the_unbiased_polynomial_mmd():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(12, 4)), rng.normal(0.5, 1, size=(10, 4))
    k = lambda a, b: (a @ b / 4 + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(12) for j in range(12) if i != j) / (12 * 11)
    yy = sum(k(y[i], y[j]) for i in range(10) for j in range(10) if i != j) / (10 * 9)
    xy = sum(k(a, b) for a in x for b in y) / (12 * 10)
    # one subset of the smaller size: compare against the same subsets drawn by the function
    mean, std = kid_from_features(x[:10], y, n_subsets=1, subset_size=10)
    xx10 = sum(k(x[i], x[j]) for i in range(10) for j in range(10) if i != j) / 90
    xy10 = sum(k(a, b) for a in x[:10] for b in y) / 100
    assert mean == pytest.approx(xx10 + yy - 2 * xy10, rel=1e-9) and std == 0
    assert xx + yy - 2 * xy > 0  # brute force on the full sets is positive for shifted data


class _TinyFeatures(nn.Module):
    """A small random conv net standing in for Inception."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten())

    @torch.no_grad()
    def forward(self, x):
        return self.net(x)


def test_fid_kid_pipeline_with_injected_extractor():
    torch.manual_seed(0)
    real = torch.rand(64, 3, 16, 16) * 2 - 1
    same = fid_kid(real, real, _TinyFeatures(), batch=16, kid_subsets=5, kid_subset_size=32)
    assert same["fid"] == pytest.approx(0, abs=1e-6) and same["n_real"] == 64
    other = torch.rand(64, 3, 16, 16) * 2 - 1  # same distribution
    dark = torch.rand(64, 3, 16, 16) - 1  # shifted distribution
    d_other = fid_kid(real, other, _TinyFeatures(), kid_subsets=5, kid_subset_size=32)
    d_dark = fid_kid(real, dark, _TinyFeatures(), kid_subsets=5, kid_subset_size=32)
    assert d_dark["fid"] > 10 * d_other["fid"] > 0
    assert d_dark["kid"] > d_other["kid"]


def test_inception_weights_are_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.delenv(gm.INCEPTION_ENV, raising=False)
    with pytest.raises(InceptionWeightsError) as err:
        find_inception_weights()
    msg = str(err.value)
    assert "pt_inception-2015-12-05-6726825d.pth" in msg and "inception_v3_google-0cc3c7bd.pth" in msg
    assert str(tmp_path / "th" / "hub" / "checkpoints") in msg
    with pytest.raises(InceptionWeightsError, match="not found at"):
        find_inception_weights(tmp_path / "nope.pth")
    target = tmp_path / "th" / "hub" / "checkpoints" / "inception_v3_google-0cc3c7bd.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"x")
    assert find_inception_weights() == target
    monkeypatch.setenv(gm.INCEPTION_ENV, str(tmp_path / "env.pth"))
    with pytest.raises(InceptionWeightsError, match="DEHAZE_INCEPTION"):
        find_inception_weights()


def test_inception_state_dicts_of_both_layouts_load_and_give_pool3_features():
    from torchvision.models import inception as tvi

    # torchvision's layout: 1000 classes, with the auxiliary classifier's weights
    tv = tvi.Inception3(num_classes=1000, aux_logits=True, init_weights=False).state_dict()
    assert any(k.startswith("AuxLogits.") for k in tv)
    gm._inception_from_state(tv)
    # pytorch-fid's layout: 1008 classes, TF pooling variants (same parameter names)
    fid_net = gm._inception_from_state({**{k: v for k, v in tv.items() if not k.startswith(("AuxLogits", "fc"))},
                                        "fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)})
    assert type(fid_net.Mixed_7c).__name__ == "FIDInceptionEMax"
    feats = InceptionFeatures(fid_net)(torch.rand(1, 3, 32, 32) * 2 - 1)
    assert feats.shape == (1, 2048)
    with pytest.raises(InceptionWeightsError, match="fc.weight"):
        gm._inception_from_state({"x": torch.zeros(1)})


def test_radial_power_spectrum_matches_a_direct_ring_mean():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    p = radial_power_spectrum(x)
    assert p.shape == (2, num_bins(16, 16))
    gray = (0.2989 * x[:, 0] + 0.5870 * x[:, 1] + 0.1140 * x[:, 2]).double().numpy()
    f = np.fft.fftshift(np.fft.fft2(gray, norm="ortho"), axes=(-2, -1))
    u, v = np.mgrid[0:16, 0:16] - 8
    rho = np.floor(np.sqrt(u ** 2 + v ** 2)).astype(int)
    for r in (1, 5, 11):
        assert p[0, r - 1].item() == pytest.approx((np.abs(f[0]) ** 2)[rho == r].mean(), rel=1e-5)  # float32 FFT


def test_spectral_discrepancy_closed_forms():
    torch.manual_seed(0)
    real = torch.rand(32, 3, 16, 16) * 2 - 1
    pr = mean_power_spectrum(real, batch=10)
    assert spectral_discrepancy(pr, pr) == {"spec_hf": 0.0, "spec_all": 0.0}
    # doubling the amplitude multiplies every power by 4: log10(4) in every bin
    d = spectral_discrepancy(pr, mean_power_spectrum(real * 2))
    assert d["spec_hf"] == pytest.approx(np.log10(4)) and d["spec_all"] == pytest.approx(np.log10(4))
    # a blur changes high frequencies much more than low ones
    blurred = torch.nn.functional.avg_pool2d(real, 3, 1, 1, count_include_pad=False)
    d = spectral_discrepancy(pr, mean_power_spectrum(blurred))
    assert d["spec_hf"] > 2 * d["spec_all"] - d["spec_hf"] > 0  # upper half > lower half


def test_figures_and_grid_are_written(tmp_path):
    torch.manual_seed(0)
    real, fake = torch.rand(8, 3, 16, 16) * 2 - 1, torch.rand(8, 3, 16, 16) - 0.5
    pr, pf = mean_power_spectrum(real), mean_power_spectrum(fake)
    plot_power_spectra(pr, {"a": pf, "b": (np.log10(pf), np.full_like(pf, 0.1))}, 16, tmp_path / "p.png")
    plot_spectrum_differences({"a": spectrum_difference_map(real, fake)}, tmp_path / "d.png")
    save_image_grid(fake, tmp_path / "g.png", nrow=4)
    from PIL import Image

    assert Image.open(tmp_path / "g.png").size == (4 * 18 + 2, 2 * 18 + 2)
    assert (tmp_path / "p.png").stat().st_size > 1000 and (tmp_path / "d.png").stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png", "g.png", "p.png"]  # no temp files left


def test_command_line_spectra_and_fid_without_weights(tiny_images, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.delenv(gm.INCEPTION_ENV, raising=False)
    assert metrics_main([str(tiny_images / "cats"), str(tiny_images / "dogs"), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "spec_hf:" in out and (tmp_path / "o" / "power_spectrum.png").is_file()
    assert metrics_main([str(tiny_images / "cats"), str(tiny_images / "dogs"), "--fid"]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""  # no number at all
    assert cap.err.startswith("error: FID/KID need Inception-v3 weights") and cap.err.count("\n") == 1


def test_cifar_feature_extractor_selectable_for_kid(tmp_path):
    from dehaze.gan import SNGANGenerator32
    from dehaze.gan.evaluate import RealReference, evaluate

    torch.manual_seed(0)
    net = gm.CifarFeatures()
    blob = {"widths": list(net.widths), "classes": 10, "info": "{}",
            "state_dict": {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}}
    torch.save(blob, tmp_path / "f.pt")
    ext = gm.load_kid_extractor(tmp_path / "f.pt")
    assert isinstance(ext, gm.CifarFeatures) and not ext.training
    assert ext(torch.zeros(3, 3, 64, 64)).shape == (3, 96)  # other sizes are resized to 32
    assert gm.load_kid_extractor("inception") is None and gm.load_kid_extractor(None) is None
    with pytest.raises(gm.InputError, match="not found"):
        gm.load_kid_extractor(tmp_path / "missing.pt")
    torch.save({"x": 1}, tmp_path / "bad.pt")
    with pytest.raises(gm.InputError, match="not a CIFAR feature classifier"):
        gm.load_kid_extractor(tmp_path / "bad.pt")

    real = torch.rand(16, 3, 32, 32) * 2 - 1
    G = SNGANGenerator32(nz=8, ngf=8)
    res = evaluate(G, RealReference(real, kid_extractor=ext), None, n=16, kid_extractor=ext, kid_subsets=3).scalars
    assert res["kid_cifar"] > 0 and "kid" not in res and "fid" not in res  # never passed off as Inception's
    same = evaluate(G, RealReference(real, kid_extractor=ext), None, n=16, kid_extractor=None).scalars
    assert "kid_cifar" not in same
