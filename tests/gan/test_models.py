import pytest
import torch

from dehaze.errors import CheckpointError, ConfigError
from dehaze.gan import (
    SNGANDiscriminator32,
    SNGANGenerator32,
    StyleGANDiscriminator,
    StyleGANGenerator,
    build_generator,
    build_nets,
)


@pytest.mark.parametrize("res,width", [(32, 8), (48, 16), (128, 16)])
def test_sngan_shapes_and_rebuild(res, width):
    torch.manual_seed(0)
    G, D = build_nets("sngan", res, nz=16, ngf=width, ndf=width)
    x = G(torch.randn(2, 16))
    assert x.shape == (2, 3, res, res) and x.abs().max() <= 1
    assert D(x).shape == (2, 1)
    G2 = build_generator(G.config)
    G2.load_state_dict(G.state_dict())
    G.eval(), G2.eval()
    z = torch.randn(2, 16)
    assert torch.equal(G(z), G2(z))


def test_paper_sizes_match_mimicry_parameter_counts():
    G, D = SNGANGenerator32(), SNGANDiscriminator32()
    # the SNGAN paper's CIFAR ResNet: G 4.28M, D 1.05M parameters
    assert sum(p.numel() for p in G.parameters()) == 4_276_739
    assert sum(p.numel() for p in D.parameters()) == 1_053_825


@pytest.mark.parametrize("res", [16, 32])
def test_stylegan_shapes_mixing_truncation(res):
    torch.manual_seed(0)
    G = StyleGANGenerator(res, nz=8, w_dim=8, width=8, mapping_layers=2)
    D = StyleGANDiscriminator(res, width=8)
    z = torch.randn(6, 8)  # 6 is not a multiple of the minibatch-stddev group (4)
    x = G(z, mixing=1.0)
    assert x.shape == (6, 3, res, res)
    assert D(x).shape == (6, 1)
    G.eval()
    a = G(z, psi=0.0, noise_mode="none")  # full truncation: every sample is the mean style
    assert torch.allclose(a, a[:1].expand_as(a), atol=1e-5)
    assert build_generator(G.config).num_ws == G.num_ws


def test_stylegan_noise_inputs_change_the_image():
    torch.manual_seed(0)
    G = StyleGANGenerator(16, nz=8, w_dim=8, width=8, mapping_layers=2)
    for layer in G.layers:
        layer.noise_strength.data.fill_(1.0)
    z = torch.randn(2, 8)
    assert not torch.allclose(G(z), G(z))
    assert torch.allclose(G(z, noise_mode="none"), G(z, noise_mode="none"))


def test_bad_inputs_are_named():
    G, D = build_nets("sngan", 32, nz=16, ngf=8, ndf=8)
    with pytest.raises(ValueError, match=r"noise of shape \(B, 16\)"):
        G(torch.randn(2, 8))
    with pytest.raises(ValueError, match=r"images of shape \(B, 3, 32, 32\)"):
        D(torch.zeros(2, 3, 48, 48))
    with pytest.raises(ConfigError, match="resolutions"):
        build_nets("sngan", 64)
    with pytest.raises(ConfigError, match="power-of-two"):
        build_nets("stylegan", 48)
    with pytest.raises(ValueError, match="multiple of 16"):
        build_nets("sngan", 128, ngf=24)
    with pytest.raises(CheckpointError):
        build_generator({"arch": "sngan", "resolution": 32, "bogus": 1})
